//! The worker's HTTP client: one per worker, so connections are pooled and reused across downloads, with
//! a per-request timeout, a body size limit, a redirect limit and the rules of which hosts and addresses
//! downloads may reach ([`rules`], enforced by [`guard`]); and what each failure means (transient or
//! not), so the download task knows whether a retry can help.

pub mod guard;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use taskq_common::service::describe;

use self::guard::{CheckedResolver, Refused};
use self::rules::DownloadRules;

/// The `download` kind's flags (the stock worker's), turned once into [`HttpSettings`].
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Seconds one HTTP request may take, from connecting to the last body byte (decimals allowed).
    #[arg(long, env = "TASKQ_HTTP_TIMEOUT", default_value_t = 30.0)]
    pub http_timeout: f64,

    /// Largest response body a download accepts, in bytes; a larger one is an error for that URL.
    #[arg(long, env = "TASKQ_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Redirects a download follows; one more is an error for that URL.
    #[arg(long, env = "TASKQ_MAX_REDIRECTS", default_value_t = 10)]
    pub max_redirects: usize,

    /// Retries of a download after a transient failure (connection refused, timeout, HTTP 5xx), with
    /// exponential backoff from 200 ms and jitter. HTTP 4xx, DNS failures and oversized bodies are final.
    #[arg(long, env = "TASKQ_DOWNLOAD_RETRIES", default_value_t = 2)]
    pub download_retries: usize,

    /// Hosts and address ranges downloads may reach; when given, every other one is refused. A rule is
    /// a range (10.0.0.0/8, fd00::/8, or one address), a host name (files.example.com) or every name
    /// under a domain (*.example.com); repeat the flag or separate rules with commas. Checked against
    /// every address a request and each of its redirects connects to.
    #[arg(
        long,
        env = "TASKQ_DOWNLOAD_ALLOW",
        value_name = "RULE",
        value_delimiter = ','
    )]
    pub download_allow: Vec<String>,

    /// Hosts and address ranges downloads may not reach, whatever --download-allow says (same rules).
    /// Link-local ranges and cloud metadata addresses (169.254.0.0/16, fe80::/10, 169.254.169.254,
    /// fd00:ec2::254, metadata.google.internal) are refused without it unless --download-allow names
    /// them (a range inside one of them lifts it, a broader one does not); loopback and private ranges
    /// are allowed unless denied here.
    #[arg(
        long,
        env = "TASKQ_DOWNLOAD_DENY",
        value_name = "RULE",
        value_delimiter = ','
    )]
    pub download_deny: Vec<String>,
}

impl HttpArgs {
    /// Checks the flags.
    pub fn into_settings(self) -> Result<HttpSettings, String> {
        let timeout = crate::settings::seconds("--http-timeout", self.http_timeout)?;
        if self.max_redirects > 100 {
            return Err(format!(
                "--max-redirects {} is out of range: use 0 to 100",
                self.max_redirects
            ));
        }
        if self.download_retries > 20 {
            return Err(format!(
                "--download-retries {} is out of range: use 0 to 20",
                self.download_retries
            ));
        }
        Ok(HttpSettings {
            timeout,
            max_body_bytes: self.max_body_bytes,
            max_redirects: self.max_redirects,
            retries: self.download_retries,
            rules: DownloadRules::parse(&self.download_allow, &self.download_deny)?,
        })
    }
}

/// The limits every download runs under (`--http-timeout`, `--max-body-bytes`, `--max-redirects`,
/// `--download-retries`, `--download-allow`, `--download-deny`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Longest one request may take, from connecting to the last body byte.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_body_bytes: u64,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Retries after a transient failure.
    pub retries: usize,
    /// Which hosts and addresses downloads may reach.
    pub rules: DownloadRules,
}

/// A body received in full, within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URL it came from, after redirects.
    pub final_url: String,
    /// The final response's status (2xx).
    pub status: u16,
    /// Body length.
    pub bytes: u64,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
}

/// Why one request did not produce a body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The host name does not resolve. Not retried: check the URL.
    #[error("cannot resolve the host: {0}. Check the URL's host name")]
    Dns(String),
    /// Nothing listens on the port. Transient.
    #[error("connection refused: nothing listens at that host and port")]
    Refused,
    /// Another connection failure (unreachable network, TLS handshake). Transient.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No complete answer in time. Transient.
    #[error("no complete answer within {0:?}; raise --http-timeout if the server is just slow")]
    Timeout(Duration),
    /// The redirect chain is longer than allowed (or loops). Not retried.
    #[error("more than {0} redirects; raise --max-redirects if the chain is legitimate")]
    TooManyRedirects(usize),
    /// The server answered with an error status. 5xx is transient; 4xx is not retried.
    #[error("HTTP {0}")]
    Status(StatusCode),
    /// The download rules refuse the host or address of the URL or of a redirect. Not retried.
    #[error("not downloaded: {0}")]
    Forbidden(Refused),
    /// The body exceeds the limit. Not retried.
    #[error("the body is larger than {limit} bytes{declared}; raise --max-body-bytes to accept it", declared = .declared.map(|n| format!(" (the server announced {n})")).unwrap_or_default())]
    TooLarge {
        /// The limit.
        limit: u64,
        /// The length the server announced, if it did.
        declared: Option<u64>,
    },
    /// The request or the body transfer failed otherwise (connection reset, malformed response). Transient.
    #[error("request failed: {0}")]
    Other(String),
}

impl FetchError {
    /// True when trying again later may succeed: refused, other connection failures, timeouts, 5xx and
    /// broken transfers. DNS failures, 4xx, redirect loops, forbidden hosts and oversized bodies are
    /// final.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused | Self::Connect(_) | Self::Timeout(_) | Self::Other(_) => true,
            Self::Status(status) => status.is_server_error(),
            Self::Dns(_)
            | Self::TooManyRedirects(_)
            | Self::Forbidden(_)
            | Self::TooLarge { .. } => false,
        }
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for downloads: {0}. HTTPS needs the system's CA certificates: install the ca-certificates package (or point SSL_CERT_FILE at a bundle)")]
pub struct ClientError(#[source] reqwest::Error);

/// The worker's HTTP client and its limits. Cheap to share behind an `Arc`; reqwest pools connections
/// per host inside it.
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
    rules: Arc<DownloadRules>,
}

impl HttpClient {
    /// Builds the client (TLS through rustls with ring, the system's root certificates), connecting
    /// only where the settings' rules allow: names resolve through [`CheckedResolver`], redirects pass
    /// [`guard::redirect_policy`], and no proxy is used.
    pub fn new(settings: HttpSettings) -> Result<Self, ClientError> {
        // reqwest is built without a TLS provider of its own; ring is ours. Err means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rules = Arc::new(settings.rules.clone());
        let client = reqwest::Client::builder()
            .user_agent(concat!("taskq-worker/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(guard::redirect_policy(
                rules.clone(),
                settings.max_redirects,
            ))
            .dns_resolver(CheckedResolver::new(rules.clone()))
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(ClientError)?;
        Ok(Self {
            client,
            settings,
            rules,
        })
    }

    /// The limits.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// One GET: follows redirects, streams the body through SHA-256 and stops as soon as it exceeds the
    /// size limit, so a huge body never sits in memory. A host or address the rules refuse, in the URL or
    /// a redirect, is [`FetchError::Forbidden`] before any connection to it.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        if let Ok(parsed) = url::Url::parse(url) {
            guard::check_url(&self.rules, &parsed).map_err(FetchError::Forbidden)?;
        }
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        let limit = self.settings.max_body_bytes;
        if let Some(declared) = response.content_length().filter(|n| *n > limit) {
            return Err(FetchError::TooLarge {
                limit,
                declared: Some(declared),
            });
        }
        let final_url = response.url().to_string();
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            bytes += chunk.len() as u64;
            if bytes > limit {
                return Err(FetchError::TooLarge {
                    limit,
                    declared: None,
                });
            }
            hasher.update(&chunk);
        }
        Ok(Fetched {
            final_url,
            status: status.as_u16(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    fn classify(&self, error: reqwest::Error) -> FetchError {
        // Before anything else: a refused redirect is a redirect error, a refused name a DNS error.
        if let Some(refused) = find_cause::<Refused>(&error) {
            return FetchError::Forbidden(refused.clone());
        }
        if error.is_timeout() {
            return FetchError::Timeout(self.settings.timeout);
        }
        if error.is_redirect() {
            return FetchError::TooManyRedirects(self.settings.max_redirects);
        }
        let connect = error.is_connect();
        let error = error.without_url();
        let detail = describe(&error);
        if connect {
            if refused(&error) {
                return FetchError::Refused;
            }
            // hyper-util reports failed name resolution as "dns error"; the resolver's own words are last.
            if detail.contains("dns error") {
                return FetchError::Dns(root_cause(&error));
            }
            return FetchError::Connect(detail);
        }
        FetchError::Other(detail)
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    find_cause::<std::io::Error>(error)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// The first error of type `E` in `error`'s chain of causes.
fn find_cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn http(args: &[&str]) -> Result<HttpSettings, String> {
        let mut argv = vec!["worker"];
        argv.extend(args);
        Cli::parse_from(argv).http.into_settings()
    }

    #[test]
    fn download_flags_are_validated() {
        assert_eq!(
            http(&[]).unwrap(),
            HttpSettings {
                timeout: Duration::from_secs(30),
                max_body_bytes: 10 * 1024 * 1024,
                max_redirects: 10,
                retries: 2,
                rules: DownloadRules::default(),
            }
        );
        assert_eq!(
            http(&["--http-timeout", "0.5"]).unwrap().timeout,
            Duration::from_millis(500)
        );
        let strings = |rules: &[&str]| rules.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(
            http(&[
                "--download-allow",
                "a.example,10.0.0.0/8",
                "--download-allow",
                "*.b.example",
                "--download-deny",
                "10.0.0.5",
            ])
            .unwrap()
            .rules,
            DownloadRules::parse(
                &strings(&["a.example", "10.0.0.0/8", "*.b.example"]),
                &strings(&["10.0.0.5"])
            )
            .unwrap()
        );
        for (flag, value, expected) in [
            ("--http-timeout", "0", "more than 0"),
            ("--http-timeout", "NaN", "more than 0"),
            ("--max-redirects", "101", "0 to 100"),
            ("--download-retries", "21", "0 to 20"),
            (
                "--download-allow",
                "ok.example,10.0.0.1/8",
                "did you mean 10.0.0.0/8?",
            ),
            (
                "--download-deny",
                "http://x/",
                "--download-deny 'http://x/' is a URL",
            ),
        ] {
            let error = http(&[flag, value]).unwrap_err();
            assert!(error.contains(expected), "{flag} {value}: {error}");
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(FetchError::Refused.is_transient());
        assert!(FetchError::Timeout(Duration::from_secs(1)).is_transient());
        assert!(FetchError::Status(StatusCode::SERVICE_UNAVAILABLE).is_transient());
        assert!(!FetchError::Status(StatusCode::NOT_FOUND).is_transient());
        assert!(!FetchError::Dns("x".into()).is_transient());
        assert!(!FetchError::TooManyRedirects(3).is_transient());
        let too_large = FetchError::TooLarge {
            limit: 10,
            declared: Some(20),
        };
        assert!(!too_large.is_transient());
        assert_eq!(
            too_large.to_string(),
            "the body is larger than 10 bytes (the server announced 20); raise --max-body-bytes to accept it"
        );
    }
}
