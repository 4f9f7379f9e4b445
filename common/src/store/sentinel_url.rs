//! The Sentinel form of `REDIS_URL`, which names a master by its Sentinel name instead of an address, so
//! the processes find it again after a failover:
//!
//! ```text
//! redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>][?sentinel_password=...]
//! ```
//!
//! The hosts are the sentinels (port 26379 when left out; host names or IP addresses, IPv6 in brackets).
//! The user and password are for the master and its replicas; the sentinels are sent the same password
//! (and no user name) unless `sentinel_password` says otherwise, where an empty `sentinel_password=`
//! means the sentinels take none. Characters with a meaning in URLs (`@ : / , ? %`) in the user name,
//! password or master name are percent-encoded, as in any URL.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// How the URL starts.
pub const SCHEME: &str = "redis+sentinel://";

/// The port of a sentinel named without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// What `REDIS_URL` looks like in its Sentinel form, for error messages.
const FORM: &str = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>][?sentinel_password=...]";

/// What a master name is percent-encoded with when the URL is shown.
const NAME_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'@')
    .add(b':')
    .add(b',');

/// A parsed `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels' hosts and ports, in the URL's order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under.
    pub master: String,
    /// The database number on the master.
    pub db: i64,
    /// The user name on the master and replicas (Redis ACL), if any.
    pub username: Option<String>,
    /// The password of the master and replicas, if any.
    pub password: Option<String>,
    /// The password of the sentinels, if any.
    pub sentinel_password: Option<String>,
}

/// A `redis+sentinel://` URL that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("REDIS_URL is not a usable Sentinel URL: {problem}. The form is {FORM}")]
pub struct SentinelUrlError {
    problem: String,
}

impl SentinelUrlError {
    fn new(problem: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
        }
    }
}

/// True when `url` is in the Sentinel form (whatever else is wrong with it).
pub fn is_sentinel_url(url: &str) -> bool {
    url.get(..SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
}

impl SentinelUrl {
    /// Parses a URL of the Sentinel form.
    pub fn parse(url: &str) -> Result<Self, SentinelUrlError> {
        if !is_sentinel_url(url) {
            return Err(SentinelUrlError::new(format!(
                "it does not start with {SCHEME}"
            )));
        }
        let rest = &url[SCHEME.len()..];
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(userinfo) => parse_userinfo(userinfo)?,
            None => (None, None),
        };
        let (master, db) = parse_path(path)?;
        let mut parsed = Self {
            sentinels: parse_hosts(hosts)?,
            master,
            db,
            sentinel_password: password.clone(),
            username,
            password,
        };
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "sentinel_password" => {
                    parsed.sentinel_password = (!value.is_empty()).then(|| value.into_owned())
                }
                other => {
                    return Err(SentinelUrlError::new(format!(
                        "unknown parameter '{other}' (the only one is sentinel_password)"
                    )))
                }
            }
        }
        Ok(parsed)
    }
}

fn decode(raw: &str, what: &str) -> Result<String, SentinelUrlError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| SentinelUrlError::new(format!("the {what} is not UTF-8 once decoded")))
}

fn parse_userinfo(raw: &str) -> Result<(Option<String>, Option<String>), SentinelUrlError> {
    let (user, password) = match raw.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (raw, None),
    };
    let user = (!user.is_empty())
        .then(|| decode(user, "user name"))
        .transpose()?;
    let password = password
        .filter(|password| !password.is_empty())
        .map(|password| decode(password, "password"))
        .transpose()?;
    Ok((user, password))
}

fn parse_hosts(raw: &str) -> Result<Vec<(String, u16)>, SentinelUrlError> {
    if raw.trim().is_empty() {
        return Err(SentinelUrlError::new(
            "it names no sentinel: list at least one host[:port] before the master name",
        ));
    }
    raw.split(',')
        .map(|entry| parse_host(entry.trim()))
        .collect()
}

fn parse_host(entry: &str) -> Result<(String, u16), SentinelUrlError> {
    let bad = |why: &str| SentinelUrlError::new(format!("sentinel '{entry}' {why}"));
    let (host, port) =
        match entry.strip_prefix('[') {
            // An IPv6 address: [::1]:26379.
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| bad("has an unclosed '['"))?;
                match after {
                    "" => (host, None),
                    after => (
                        host,
                        Some(after.strip_prefix(':').ok_or_else(|| {
                            bad("has something other than :port after its address")
                        })?),
                    ),
                }
            }
            None => match entry.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            },
        };
    if host.is_empty() {
        return Err(bad("has no host (an empty entry in the list?)"));
    }
    let bracketed = entry.starts_with('[');
    let usable = |c: char| match bracketed {
        true => c.is_ascii_hexdigit() || matches!(c, ':' | '.'),
        false => c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'),
    };
    if !host.chars().all(usable) {
        return Err(bad(
            "is not a host name or IP address (percent-encode '@', ':' and '/' in a password)",
        ));
    }
    let port = match port {
        None => DEFAULT_SENTINEL_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| bad("has a bad port: use a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

fn parse_path(raw: &str) -> Result<(String, i64), SentinelUrlError> {
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    let mut segments = raw.split('/');
    let master = segments.next().unwrap_or_default();
    if master.is_empty() {
        return Err(SentinelUrlError::new(
            "it has no master name: end it with /<master-name>, the name in the sentinels' `sentinel monitor` line",
        ));
    }
    let master = decode(master, "master name")?;
    let db = match segments.next() {
        None => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| {
                SentinelUrlError::new(format!(
                    "'{db}' after the master name is not a database number"
                ))
            })?,
    };
    if segments.next().is_some() {
        return Err(SentinelUrlError::new(
            "its path has more than /<master-name>/<db>",
        ));
    }
    Ok((master, db))
}

/// The URL with its passwords replaced by `***`, for logs and error messages.
impl fmt::Display for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (None, None) => {}
        }
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(host, port)| match host.contains(':') {
                true => format!("[{host}]:{port}"),
                false => format!("{host}:{port}"),
            })
            .collect();
        let master = utf8_percent_encode(&self.master, NAME_ESCAPES);
        write!(f, "{}/{master}/{}", hosts.join(","), self.db)?;
        if self.sentinel_password != self.password {
            let shown = if self.sentinel_password.is_some() {
                "***"
            } else {
                ""
            };
            write!(f, "?sentinel_password={shown}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SentinelUrl({self})")
    }
}

/// `url` with its passwords replaced by `***`, or a placeholder if it does not parse (it might hold a
/// password in a shape not recognised).
pub fn redact(url: &str) -> String {
    SentinelUrl::parse(url)
        .map(|parsed| parsed.to_string())
        .unwrap_or_else(|_| "<unparseable url>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(url: &str) -> String {
        SentinelUrl::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn the_compose_form_parses_with_host_names() {
        let url = SentinelUrl::parse(
            "redis+sentinel://:s3cret@sentinel1:26379,sentinel2:26379,sentinel3:26379/taskq",
        )
        .unwrap();
        assert_eq!(
            url.sentinels,
            [
                ("sentinel1".to_owned(), 26379),
                ("sentinel2".to_owned(), 26379),
                ("sentinel3".to_owned(), 26379)
            ]
        );
        assert_eq!(url.master, "taskq");
        assert_eq!(url.db, 0);
        assert_eq!(url.username, None);
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        assert_eq!(url.sentinel_password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn users_databases_ports_and_sentinel_passwords() {
        let url = SentinelUrl::parse(
            "REDIS+SENTINEL://app:p%40ss@127.0.0.1:5000,[::1],other/my%20master/3/?sentinel_password=",
        )
        .unwrap();
        assert_eq!(
            url.sentinels,
            [
                ("127.0.0.1".to_owned(), 5000),
                ("::1".to_owned(), DEFAULT_SENTINEL_PORT),
                ("other".to_owned(), DEFAULT_SENTINEL_PORT)
            ]
        );
        assert_eq!(url.master, "my master");
        assert_eq!(url.db, 3);
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.sentinel_password, None, "an empty one means none");
        let own = SentinelUrl::parse("redis+sentinel://:a@h/m?sentinel_password=b").unwrap();
        assert_eq!(own.sentinel_password.as_deref(), Some("b"));
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        assert!(problem("redis+sentinel://h1:26379").contains("no master name"));
        assert!(problem("redis+sentinel://h1:26379/").contains("no master name"));
        assert!(problem("redis+sentinel:///taskq").contains("names no sentinel"));
        assert!(problem("redis+sentinel://:pw@/taskq").contains("names no sentinel"));
        assert!(problem("redis+sentinel://h1:port/taskq").contains("'h1:port' has a bad port"));
        assert!(problem("redis+sentinel://h1:0/taskq").contains("bad port"));
        assert!(problem("redis+sentinel://h1:70000/taskq").contains("bad port"));
        assert!(problem("redis+sentinel://h1,,h2/taskq").contains("has no host"));
        assert!(problem("redis+sentinel://[::1/taskq").contains("unclosed"));
        assert!(problem("redis+sentinel://::1/taskq").contains("not a host name"));
        assert!(problem("redis+sentinel://a b/taskq").contains("not a host name"));
        assert!(problem("redis+sentinel://h1/taskq/x").contains("not a database number"));
        assert!(problem("redis+sentinel://h1/taskq/1/2").contains("more than"));
        assert!(problem("redis+sentinel://h1/taskq?password=x").contains("unknown parameter"));
        assert!(problem("redis://h1/taskq").contains("does not start with"));
        // Every message shows the form to follow.
        assert!(problem("redis+sentinel://h1").contains(FORM));
    }

    #[test]
    fn redaction_hides_both_passwords() {
        assert_eq!(
            redact("redis+sentinel://:s3cret@s1,s2:5/taskq"),
            "redis+sentinel://:***@s1:26379,s2:5/taskq/0"
        );
        assert_eq!(
            redact("redis+sentinel://u:a@s1/m/2?sentinel_password=b"),
            "redis+sentinel://u:***@s1:26379/m/2?sentinel_password=***"
        );
        assert_eq!(
            redact("redis+sentinel://s1/my%20master"),
            "redis+sentinel://s1:26379/my%20master/0"
        );
        assert_eq!(redact("redis+sentinel://:a@s1/"), "<unparseable url>");
        assert!(is_sentinel_url("Redis+Sentinel://x/m"));
        assert!(!is_sentinel_url("redis://x"));
    }
}
