//! Which hosts and addresses downloads may reach (`--download-allow`, `--download-deny`), so that whoever
//! can submit a job cannot turn the workers against the network they run in (server-side request
//! forgery: cloud metadata, admin ports, private services).
//!
//! The policy, in order: a `--download-deny` rule that matches refuses; a [default rule](DEFAULT_DENY)
//! that matches (link-local and metadata addresses) refuses unless an allow rule lifts it; when
//! `--download-allow` rules are given, a request must match one of them; everything else is allowed.
//! Loopback and private ranges are allowed by default: workers on a private network download from
//! private hosts, and the tests and benchmark download from 127.0.0.1.
//!
//! The rules are checked against every address a request connects to (see [`super::guard`]), not only
//! against the URL, so neither a host name that resolves to a denied address nor a redirect gets around
//! them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// One rule: an address range or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Addresses in a range: `10.0.0.0/8`, `fd00::/8`; a bare address is its own range (`/32`, `/128`).
    Range(IpNet),
    /// One host name, exactly, as written in URLs (case-insensitive): `files.example.com`.
    Host(String),
    /// Every name under a domain, `*.example.com`: `a.example.com`, `a.b.example.com`, not
    /// `example.com` itself. Held without the `*`, as `.example.com`.
    Suffix(String),
}

impl Rule {
    /// True if the rule matches the host name `name` (already lowercase, without a trailing dot).
    fn matches_name(&self, name: &str) -> bool {
        match self {
            Self::Range(_) => false,
            Self::Host(host) => name == host,
            Self::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }

    /// True if the rule matches the address `ip` (canonical: IPv4-mapped IPv6 as IPv4).
    fn matches_address(&self, ip: IpAddr) -> bool {
        matches!(self, Self::Range(range) if range.contains(&ip))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Range(range) => write!(f, "{range}"),
            Self::Host(host) => f.write_str(host),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl FromStr for Rule {
    type Err = String;

    /// Parses one rule; the error says what is wrong and what a rule looks like.
    fn from_str(text: &str) -> Result<Self, String> {
        let rule = text.trim();
        if rule.contains("://") {
            return Err(
                "is a URL: write the host alone (files.example.com) or a range (10.0.0.0/8)".into(),
            );
        }
        if let Some((address, prefix)) = rule.split_once('/') {
            return parse_range(address, prefix);
        }
        let bare = rule.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self::Range(IpNet::from(ip)));
        }
        if let Some(domain) = rule.strip_prefix("*.") {
            return Ok(Self::Suffix(format!(".{}", host_name(domain)?)));
        }
        Ok(Self::Host(host_name(rule)?))
    }
}

fn parse_range(address: &str, prefix: &str) -> Result<Rule, String> {
    let ip: IpAddr = address.parse().map_err(|_| {
        format!("'{address}' is not an IP address: a range is written 10.0.0.0/8 or fd00::/8")
    })?;
    let prefix: u8 = prefix.parse().map_err(|_| {
        format!("'/{prefix}' is not a prefix length: a range is written 10.0.0.0/8 or fd00::/8")
    })?;
    let range = IpNet::new(ip, prefix).map_err(|_| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        format!("the prefix /{prefix} is longer than an address ({max} bits)")
    })?;
    if range.trunc() != range {
        return Err(format!(
            "has address bits set past its /{prefix} prefix: did you mean {}?",
            range.trunc()
        ));
    }
    Ok(Rule::Range(range))
}

/// Checks a host name and returns it lowercase, without a trailing dot.
fn host_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return Err("is empty: write a host name, *.domain, an address or a range".into());
    }
    if name.contains('*') {
        return Err("has a '*' that is not a leading '*.': write *.example.com for every name under example.com".into());
    }
    if name.contains(':') {
        return Err(
            "is neither an address nor a host name (a port or a scheme is not part of a rule)"
                .into(),
        );
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(
            "is not a host name: letters, digits, '-' and '_' in dot-separated labels".into(),
        );
    }
    // URLs read a name whose last label is a number as an IPv4 address (http://10.1/ is 10.0.0.1): as a
    // name, such a rule would never match.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "is neither an address nor a host name: write addresses in full (10.0.0.1)".into(),
        );
    }
    Ok(name)
}

/// Denied unless an allow rule lifts them: where clouds serve instance metadata (credentials), and the
/// unspecified addresses, which reach the worker's own host around any rule about loopback. A range
/// default is lifted by an allow range inside it (`--download-allow 169.254.0.0/16` lifts the link-local
/// range but not the metadata address within it, which takes `--download-allow 169.254.169.254`), a name
/// default by an allow rule naming exactly that host.
pub const DEFAULT_DENY: [(&str, &str); 7] = [
    (
        "169.254.169.254",
        "the instance metadata address of AWS, Google Cloud, Azure and OpenStack",
    ),
    ("fd00:ec2::254", "AWS instance metadata over IPv6"),
    ("metadata.google.internal", "Google Cloud instance metadata"),
    ("169.254.0.0/16", "IPv4 link-local"),
    ("fe80::/10", "IPv6 link-local"),
    ("0.0.0.0/8", "'this host': reaches the worker's own host"),
    (
        "::/128",
        "the unspecified address: reaches the worker's own host",
    ),
];

/// Why a host or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A `--download-deny` rule matches.
    #[error("is denied by --download-deny {0}")]
    Denied(Rule),
    /// A default rule matches and no allow rule lifts it.
    #[error("is denied by default ({why}); --download-allow {rule} would allow it")]
    Default {
        /// The default rule.
        rule: Rule,
        /// What it protects.
        why: &'static str,
    },
    /// `--download-allow` rules are given and none matches.
    #[error("matches no --download-allow rule ({allowed})")]
    NotAllowed {
        /// The allow rules, for the message.
        allowed: String,
    },
}

/// A host or address a download may not reach, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} {reason}")]
pub struct Refusal {
    /// What was refused: `169.254.169.254`, `host metadata.google.internal`, `localhost (127.0.0.1)`.
    pub target: String,
    /// Which rule refused it.
    pub reason: Reason,
}

/// The download rules, checked and ready to match (see the [module](self) for the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRules {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    defaults: Vec<(Rule, &'static str)>,
}

impl Default for DownloadRules {
    /// No allow or deny rules: only the [defaults](DEFAULT_DENY) refuse.
    fn default() -> Self {
        Self::parse(&[], &[]).expect("no rules are valid rules")
    }
}

impl DownloadRules {
    /// Parses the flags' rules (each entry one rule; blank entries are skipped). The error names the
    /// flag and the rule that is wrong.
    pub fn parse(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let parse = |flag: &str, rules: &[String]| -> Result<Vec<Rule>, String> {
            rules
                .iter()
                .filter(|rule| !rule.trim().is_empty())
                .map(|rule| rule.parse().map_err(|why| format!("{flag} '{rule}' {why}")))
                .collect()
        };
        let defaults = DEFAULT_DENY
            .iter()
            .map(|(rule, why)| (rule.parse().expect("the default rules are valid"), *why))
            .collect();
        Ok(Self {
            allow: parse("--download-allow", allow)?,
            deny: parse("--download-deny", deny)?,
            defaults,
        })
    }

    /// Checks a host name before it is resolved: deny rules and defaults by name. The allow list is
    /// checked with each address the name resolves to ([`DownloadRules::check_address`]), since an allow
    /// range may admit a name.
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let name = normalise(name);
        let refuse = |reason| Refusal {
            target: format!("host {name}"),
            reason,
        };
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches_name(&name)) {
            return Err(refuse(Reason::Denied(rule.clone())));
        }
        let lifted = |default: &Rule| self.allow.iter().any(|rule| rule == default);
        if let Some((rule, why)) = self
            .defaults
            .iter()
            .find(|(rule, _)| rule.matches_name(&name) && !lifted(rule))
        {
            return Err(refuse(Reason::Default {
                rule: rule.clone(),
                why,
            }));
        }
        // With names alone in the allow list, a name none of them matches is refused before it is even
        // looked up (an attacker's name need not reach their DNS server).
        let ranges = self.allow.iter().any(|rule| matches!(rule, Rule::Range(_)));
        if self.allow.is_empty() || ranges || self.allow.iter().any(|r| r.matches_name(&name)) {
            return Ok(());
        }
        Err(refuse(self.not_allowed()))
    }

    /// Checks one address a request would connect to, reached through the host name `name` (`None` for
    /// an address written in the URL).
    pub fn check_address(&self, name: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let name = name.map(normalise);
        let refuse = |reason| Refusal {
            target: match &name {
                Some(name) => format!("{name} ({ip})"),
                None => ip.to_string(),
            },
            reason,
        };
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches_address(ip)) {
            return Err(refuse(Reason::Denied(rule.clone())));
        }
        if let Some((rule, why)) = self
            .defaults
            .iter()
            .find(|(rule, _)| rule.matches_address(ip) && !self.lifts(rule, ip))
        {
            return Err(refuse(Reason::Default {
                rule: rule.clone(),
                why,
            }));
        }
        let allowed = |rule: &Rule| {
            rule.matches_address(ip) || name.as_deref().is_some_and(|n| rule.matches_name(n))
        };
        if self.allow.is_empty() || self.allow.iter().any(allowed) {
            return Ok(());
        }
        Err(refuse(self.not_allowed()))
    }

    fn not_allowed(&self) -> Reason {
        let allowed: Vec<String> = self.allow.iter().map(Rule::to_string).collect();
        Reason::NotAllowed {
            allowed: allowed.join(", "),
        }
    }

    /// True if an allow range inside the default range `default` admits `ip`: a broader allow rule
    /// (`0.0.0.0/0`) does not lift a default, so only an explicit one does.
    fn lifts(&self, default: &Rule, ip: IpAddr) -> bool {
        let Rule::Range(default) = default else {
            return false;
        };
        self.allow.iter().any(|rule| {
            matches!(rule, Rule::Range(range) if range.contains(&ip) && default.contains(range))
        })
    }
}

/// A host name as rules hold them: lowercase, without a trailing dot.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
