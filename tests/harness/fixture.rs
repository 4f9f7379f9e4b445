//! A local HTTP fixture server for download tests and the benchmark (there is no internet here): pages with
//! chosen latency and size, error statuses, huge and never-ending answers, redirect chains, and flaky
//! URLs that fail a set number of times. It listens on 127.0.0.1 only, on a port of its own, and runs
//! on a thread and runtime of its own, so it keeps answering while a test blocks on a child process.
//!
//! Routes (every one counts its hits, see [`FixtureServer::hits`]):
//! - `/page/{id}?latency_ms=&size=`: [`page_body`] of `size` bytes (default 1024) after `latency_ms`.
//! - `/status/{code}?latency_ms=`: that status, with a short body.
//! - `/huge?size=`: `size` bytes (default 64 MiB) streamed without a `Content-Length`.
//! - `/hang`: accepts the request and never answers (for 5 minutes, or until the server stops).
//! - `/redirect/{n}`: `n` redirects, then `/page/0`.
//! - `/redirect-to?url=`: one redirect to `url`, anywhere (for the download rules' tests).
//! - `/flaky/{key}?fail=N`: 503 for the first N requests, then `/page/{key}`'s body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Bytes of a page whose size is not given.
pub const DEFAULT_PAGE_SIZE: usize = 1024;
/// Bytes `/huge` streams when no size is given.
pub const DEFAULT_HUGE_SIZE: usize = 64 << 20;
/// How long `/hang` holds a request before it gives up (the tests' timeouts are far shorter).
const HANG_LIMIT: Duration = Duration::from_secs(300);

/// The body of `/page/{id}?size=N`: a line naming the page, repeated and cut to `size` bytes.
pub fn page_body(id: &str, size: usize) -> Vec<u8> {
    format!("taskq fixture page {id}\n")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(size)
        .collect()
}

/// SHA-256 of `bytes`, lowercase hex, as the worker reports it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A URL on 127.0.0.1 where nothing listens (a port that was just free), for "connection refused".
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/closed")
}

#[derive(Default)]
struct Hits(Mutex<HashMap<String, u32>>);

impl Hits {
    /// Counts a hit on `path`; returns how many there have been, this one included.
    fn count(&self, path: &str) -> u32 {
        let mut hits = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = hits.entry(path.to_owned()).or_default();
        *count += 1;
        *count
    }

    fn get(&self, path: &str) -> u32 {
        let hits = self.0.lock().unwrap_or_else(|e| e.into_inner());
        hits.get(path).copied().unwrap_or(0)
    }
}

/// A running fixture server; stopped when dropped.
pub struct FixtureServer {
    addr: SocketAddr,
    hits: Arc<Hits>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FixtureServer {
    /// Starts a server on 127.0.0.1 on a free port.
    pub fn start() -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST.into())
    }

    /// Starts a server on `ip` (another loopback address, 127.0.0.2, say) on a free port.
    pub fn start_on(ip: IpAddr) -> Self {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind the fixture server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let hits = Arc::new(Hits::default());
        let app = Router::new()
            .route("/page/{id}", get(page))
            .route("/status/{code}", get(status))
            .route("/huge", get(huge))
            .route("/hang", get(hang))
            .route("/redirect/{n}", get(redirect))
            .route("/redirect-to", get(redirect_to))
            .route("/flaky/{key}", get(flaky))
            .layer(middleware::from_fn_with_state(hits.clone(), count_hit))
            .with_state(hits.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fixture runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    served = axum::serve(listener, app) => {
                        if let Err(error) = served {
                            eprintln!("fixture server stopped: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
            // Dropping the runtime ends every connection still open (those to /hang, say).
        });
        Self {
            addr,
            hits,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The absolute URL of `path_and_query` on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// How many requests reached `path` (without its query) so far.
    pub fn hits(&self, path: &str) -> u32 {
        self.hits.get(path)
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn count_hit(State(hits): State<Arc<Hits>>, request: Request, next: Next) -> Response {
    hits.count(request.uri().path());
    next.run(request).await
}

#[derive(Deserialize)]
struct PageQuery {
    latency_ms: Option<u64>,
    size: Option<usize>,
}

async fn page(Path(id): Path<String>, Query(query): Query<PageQuery>) -> Vec<u8> {
    delay(query.latency_ms).await;
    page_body(&id, query.size.unwrap_or(DEFAULT_PAGE_SIZE))
}

async fn status(Path(code): Path<u16>, Query(query): Query<PageQuery>) -> Response {
    delay(query.latency_ms).await;
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("fixture status {code}\n")).into_response()
}

async fn huge(Query(query): Query<PageQuery>) -> Response {
    static BLOCK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
    let total = query.size.unwrap_or(DEFAULT_HUGE_SIZE);
    let blocks = (0..total).step_by(BLOCK.len()).map(move |start| {
        let len = BLOCK.len().min(total - start);
        Ok::<_, Infallible>(Bytes::from_static(&BLOCK[..len]))
    });
    Body::from_stream(futures::stream::iter(blocks)).into_response()
}

async fn hang() -> &'static str {
    tokio::time::sleep(HANG_LIMIT).await;
    "too late\n"
}

async fn redirect(Path(n): Path<u32>) -> Response {
    let next = if n <= 1 {
        "/page/0".to_owned()
    } else {
        format!("/redirect/{}", n - 1)
    };
    (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
}

#[derive(Deserialize)]
struct RedirectQuery {
    url: String,
}

async fn redirect_to(Query(query): Query<RedirectQuery>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, query.url)]).into_response()
}

#[derive(Deserialize)]
struct FlakyQuery {
    fail: Option<u32>,
}

async fn flaky(
    State(hits): State<Arc<Hits>>,
    Path(key): Path<String>,
    Query(query): Query<FlakyQuery>,
) -> Response {
    let seen = hits.get(&format!("/flaky/{key}"));
    if seen <= query.fail.unwrap_or(0) {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response();
    }
    page_body(&key, DEFAULT_PAGE_SIZE).into_response()
}

async fn delay(latency_ms: Option<u64>) {
    if let Some(ms) = latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
