//! The `/metrics` endpoint of the long-running binaries (worker, consumer), off unless `--metrics-addr`
//! is given: Prometheus scrapes it over plain HTTP. Each binary keeps its own registry and typed handles
//! (its `metrics` module); this module only binds the address and serves whatever registry it is given.
//!
//! The address is bound before any work starts, so a taken address stops the process at once with a
//! usage error (exit 2) that names it, rather than a worker that runs unobserved.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::Args;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The content type of the exposition `prometheus-client` writes (OpenMetrics text, which Prometheus
/// asks for first).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A binary's set of metric handles, registered under their names.
pub trait MetricSet: Send + Sync + 'static {
    /// Adds every metric to `registry` (handles are shared, so the registry reads the live values).
    fn register(&self, registry: &mut Registry);
}

/// Installs a binary's metric set in `cell` (once per process; later calls share the same values) and
/// returns a registry holding it, for [`MetricsListener::serve`]. Until then the cell is empty and the
/// binary's recording calls do nothing.
pub fn install<M: MetricSet>(cell: &'static OnceLock<M>, new: fn() -> M) -> Registry {
    let mut registry = Registry::default();
    cell.get_or_init(new).register(&mut registry);
    registry
}

/// `--metrics-addr`, flattened into the worker's and the consumer's command lines.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics, for example 127.0.0.1:9100 (0.0.0.0:9100 in
    /// a container; port 0 picks a free port, logged at start) [default: off]. An address already in use
    /// stops the process at start (exit 2).
    #[arg(long, env = "TASKQ_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

/// Why the metrics address cannot be served.
#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-addr {address}: cannot listen there ({source}). Choose a free HOST:PORT, or stop the \
     process that uses it"
)]
pub struct MetricsBindError {
    /// The address as given.
    pub address: String,
    /// Why binding failed (in use, not an address of this host, not HOST:PORT).
    pub source: std::io::Error,
}

impl MetricsArgs {
    /// Binds the metrics address, if one was given.
    pub fn bind(&self) -> Result<Option<MetricsListener>, MetricsBindError> {
        self.metrics_addr
            .as_deref()
            .map(MetricsListener::bind)
            .transpose()
    }
}

/// A bound metrics address, not yet served.
#[derive(Debug)]
pub struct MetricsListener {
    listener: std::net::TcpListener,
}

impl MetricsListener {
    /// Binds `address` (HOST:PORT) now, outside any async runtime.
    pub fn bind(address: &str) -> Result<Self, MetricsBindError> {
        let error = |source| MetricsBindError {
            address: address.to_owned(),
            source,
        };
        let listener = std::net::TcpListener::bind(address).map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        Ok(Self { listener })
    }

    /// The address bound (with the port chosen, for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `registry` at `/metrics` on a task of its own until `shutdown` fires or the returned
    /// guard is dropped. A scrape encodes the registry afresh, so nothing is computed between scrapes.
    pub fn serve(self, registry: Registry, shutdown: CancellationToken) -> MetricsServer {
        let address = self.local_addr();
        let task = tokio::spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(self.listener) {
                Ok(listener) => listener,
                Err(error) => return tracing::error!("metrics endpoint not served: {error}"),
            };
            let app = Router::new()
                .route("/metrics", get(scrape))
                .with_state(Arc::new(registry));
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!("metrics endpoint stopped: {error}");
            }
        });
        if let Some(address) = address {
            tracing::info!("serving metrics at http://{address}/metrics");
        }
        MetricsServer { task }
    }
}

/// The running endpoint; dropping it stops serving.
#[derive(Debug)]
pub struct MetricsServer {
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scrape(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail; a metric that fails to encode would be a bug in its labels.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::warn!("metrics not fully encoded: {error}");
    }
    ([(CONTENT_TYPE, OPENMETRICS)], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_address_is_refused_with_its_name() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = MetricsListener::bind(&address).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&address), "{message}");
        assert!(message.contains("Choose a free HOST:PORT"), "{message}");
        let args = MetricsArgs::default();
        assert!(args.bind().unwrap().is_none(), "off unless set");
    }
}
