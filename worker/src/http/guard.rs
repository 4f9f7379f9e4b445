//! Where the download rules are enforced, so that every connection goes to a checked address:
//!
//! - [`CheckedResolver`] is the HTTP client's DNS resolver: it checks the name, resolves it, and hands the
//!   connector only the addresses the rules allow. A name that resolves to a denied address (DNS
//!   rebinding, a name pointed at 169.254.169.254) is refused, and the connection can only go where the
//!   check said.
//! - [`check_url`] covers what the resolver never sees: an address written in the URL
//!   (`http://169.254.169.254/`), which the connector uses without resolving. The client runs it on the
//!   first URL and, through [`redirect_policy`], on every redirect before it is followed.
//!
//! The client uses no proxy: through one, the worker could not know where a request really goes.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use url::{Host, Url};

use super::rules::{DownloadRules, Refusal};

/// The hosts or addresses a request was refused for (all of a name's addresses, when each is denied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(Refusal::to_string).collect::<Vec<_>>().join("; "))]
pub struct Refused(pub Vec<Refusal>);

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Self(vec![refusal])
    }
}

/// Checks a URL's host before a request to it: a name by the name rules (its addresses are checked
/// when it is resolved), an address by every rule.
pub fn check_url(rules: &DownloadRules, url: &Url) -> Result<(), Refused> {
    match url.host() {
        Some(Host::Domain(name)) => rules.check_name(name)?,
        Some(Host::Ipv4(ip)) => rules.check_address(None, ip.into())?,
        Some(Host::Ipv6(ip)) => rules.check_address(None, ip.into())?,
        // reqwest refuses a URL without a host itself.
        None => {}
    }
    Ok(())
}

/// Follows up to `max` redirects, each only if [`check_url`] passes for its target; a refused one fails
/// the request with the [`Refused`] as its cause.
pub fn redirect_policy(rules: Arc<DownloadRules>, max: usize) -> Policy {
    let limited = Policy::limited(max);
    Policy::custom(move |attempt| match check_url(&rules, attempt.url()) {
        Ok(()) => limited.redirect(attempt),
        Err(refused) => attempt.error(refused),
    })
}

/// The HTTP client's DNS resolver: the system's (`getaddrinfo`, as reqwest's own), filtered by the
/// rules.
pub struct CheckedResolver {
    rules: Arc<DownloadRules>,
}

impl CheckedResolver {
    /// A resolver that applies `rules`.
    pub fn new(rules: Arc<DownloadRules>) -> Self {
        Self { rules }
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            rules.check_name(&name).map_err(Refused::from)?;
            // Port 0: the connector puts the URL's port in.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let (allowed, refused) = filter(&rules, &name, resolved);
            if allowed.is_empty() && !refused.0.is_empty() {
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            if !refused.0.is_empty() {
                tracing::warn!(host = %name, %refused, "some addresses of the host are refused; connecting to the others only");
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Splits a name's addresses into the allowed ones and the refusals of the others (one per address).
fn filter(
    rules: &DownloadRules,
    name: &str,
    resolved: Vec<SocketAddr>,
) -> (Vec<SocketAddr>, Refused) {
    let mut allowed = Vec::with_capacity(resolved.len());
    let mut refused = Vec::new();
    for address in resolved {
        match rules.check_address(Some(name), address.ip()) {
            Ok(()) => allowed.push(address),
            Err(refusal) if !refused.contains(&refusal) => refused.push(refusal),
            Err(_) => {}
        }
    }
    (allowed, Refused(refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(deny: &[&str]) -> DownloadRules {
        let deny: Vec<String> = deny.iter().map(|r| r.to_string()).collect();
        DownloadRules::parse(&[], &deny).unwrap()
    }

    #[test]
    fn urls_are_checked_by_their_host_name_or_address() {
        let rules = rules(&["10.0.0.0/8", "*.corp.example"]);
        let check = |url: &str| check_url(&rules, &url.parse().unwrap()).map_err(|e| e.to_string());
        assert_eq!(check("http://files.example/a"), Ok(()));
        assert_eq!(check("http://[2001:db8::1]:8080/"), Ok(()));
        assert_eq!(
            check("http://10.9.8.7:8080/x"),
            Err("10.9.8.7 is denied by --download-deny 10.0.0.0/8".into())
        );
        // URLs spell IPv4 addresses in several ways; the parsed address is what is checked.
        assert!(check("http://0x0a000001/")
            .unwrap_err()
            .contains("10.0.0.1 is denied"));
        assert!(check("http://[::ffff:10.0.0.1]/")
            .unwrap_err()
            .contains("10.0.0.1 is denied"));
        assert!(check("http://169.254.169.254/latest/")
            .unwrap_err()
            .contains("by default"));
        assert!(check("https://git.corp.example/")
            .unwrap_err()
            .contains("*.corp.example"));
    }

    #[tokio::test]
    async fn the_resolver_hands_over_allowed_addresses_only() {
        let resolve = |deny: &[&str], name: &str| {
            let resolver = CheckedResolver::new(Arc::new(rules(deny)));
            resolver.resolve(name.parse().unwrap())
        };
        let addresses: Vec<SocketAddr> = resolve(&[], "127.0.0.1").await.unwrap().collect();
        assert_eq!(addresses, ["127.0.0.1:0".parse().unwrap()]);
        let error = resolve(&["127.0.0.0/8"], "127.0.0.1").await.err().unwrap();
        assert_eq!(
            error
                .downcast_ref::<Refused>()
                .map(ToString::to_string)
                .as_deref(),
            Some("127.0.0.1 (127.0.0.1) is denied by --download-deny 127.0.0.0/8")
        );
        let error = resolve(&["*.example"], "a.example").await.err().unwrap();
        assert!(
            error.to_string().contains("host a.example is denied"),
            "{error}"
        );
    }

    #[test]
    fn a_name_keeps_its_allowed_addresses_and_reports_the_others_once() {
        let rules = rules(&["::1"]);
        let resolved = ["[::1]:0", "127.0.0.1:0", "[::1]:0"].map(|a| a.parse().unwrap());
        let (allowed, refused) = filter(&rules, "localhost", resolved.to_vec());
        assert_eq!(allowed, ["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        assert_eq!(
            refused.to_string(),
            "localhost (::1) is denied by --download-deny ::1/128"
        );
    }
}
