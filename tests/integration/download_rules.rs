//! The download rules end to end (`--download-allow`, `--download-deny`): a refused host or address fails
//! its item at once, naming the rule and the address, whether it is in the URL, behind a redirect or
//! behind a host name; the refused servers (real ones, on other loopback addresses) never see a request;
//! and a worker with a bad rule does not start.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use taskq_tests::fixture::FixtureServer;
use taskq_tests::{output_lines, Deployment};

/// Submits `cases` (URL, expected fragments of its error, or `None` for a download that succeeds) and
/// checks each output line.
fn check_cases(deployment: &Deployment, cases: &[(String, Option<Vec<&str>>)]) {
    let mut args = vec!["submit", "download"];
    for (url, _) in cases {
        args.extend(["--url", url.as_str()]);
    }
    args.push("--wait");
    let summary = deployment.producer(&args).json();
    let lines = output_lines(&summary);
    assert_eq!(lines.len(), cases.len(), "{summary}");
    for (line, (url, expected)) in lines.iter().zip(cases) {
        assert_eq!(line["input"].as_str(), Some(url.as_str()));
        match expected {
            None => assert_eq!(line["output"]["status"].as_u64(), Some(200), "{line}"),
            Some(fragments) => {
                let error = error(line);
                for fragment in fragments {
                    assert!(
                        error.contains(fragment),
                        "{url}: '{error}' lacks '{fragment}'"
                    );
                }
            }
        }
    }
}

fn error(line: &Value) -> &str {
    line["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {line}"))
}

/// `url` with its host 127.0.0.1 written as the name `localhost`.
fn by_name(url: &str) -> String {
    url.replacen("127.0.0.1", "localhost", 1)
}

#[test]
fn denied_addresses_are_refused_in_urls_redirects_and_names_and_never_reached() {
    let allowed = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 4).into());
    let denied = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 2).into());
    let local = FixtureServer::start();
    let mut deployment = Deployment::new("dl-deny");
    deployment.start(
        1,
        &[
            "--download-deny",
            "127.0.0.2/31,127.0.0.1",
            "--download-deny",
            "::1",
        ],
    );
    let redirect = |to: &str| allowed.url(&format!("/redirect-to?url={to}"));
    let range = "127.0.0.2 is denied by --download-deny 127.0.0.2/31";
    let cases = vec![
        (allowed.url("/page/ok"), None),
        (
            denied.url("/page/direct"),
            Some(vec!["not downloaded: ", range, "not retried"]),
        ),
        // An allowed host redirects to a denied address: the redirect is not followed.
        (
            redirect(&denied.url("/page/behind-redirect")),
            Some(vec![range, "not retried"]),
        ),
        // ... or to a name that resolves to denied addresses only (127.0.0.1 and perhaps ::1).
        (
            redirect(&by_name(&local.url("/page/behind-name"))),
            Some(vec![
                "localhost (127.0.0.1) is denied by --download-deny 127.0.0.1/32",
            ]),
        ),
        // The defaults: link-local and metadata addresses, without any rule given.
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            Some(vec![
                "169.254.169.254 is denied by default",
                "--download-allow 169.254.169.254/32",
            ]),
        ),
        (
            "http://[fe80::1]:8080/".into(),
            Some(vec!["fe80::1 is denied by default (IPv6 link-local)"]),
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/".into(),
            Some(vec!["host metadata.google.internal is denied by default"]),
        ),
    ];
    check_cases(&deployment, &cases);
    assert_eq!(denied.hits("/page/direct"), 0);
    assert_eq!(denied.hits("/page/behind-redirect"), 0);
    assert_eq!(local.hits("/page/behind-name"), 0);
    assert_eq!(
        allowed.hits("/redirect-to"),
        2,
        "each redirect asked for once: not retried"
    );
    assert_eq!(allowed.hits("/page/ok"), 1);
}

#[test]
fn an_allow_list_admits_only_its_hosts() {
    let listed = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 4).into());
    let other = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 3).into());
    let local = FixtureServer::start();
    let mut deployment = Deployment::new("dl-allow");
    deployment.start(1, &["--download-allow", "127.0.0.4,localhost"]);
    let refused = |address: &str| {
        format!("{address} matches no --download-allow rule (127.0.0.4/32, localhost)")
    };
    let (refused_local, refused_other) = (refused("127.0.0.1"), refused("127.0.0.3"));
    let behind_redirect = other.url("/page/behind-redirect");
    let cases = vec![
        (listed.url("/page/a"), None),
        // Allowed by its name, whatever address it has.
        (by_name(&local.url("/page/by-name")), None),
        // The same server by its address is not on the list.
        (
            local.url("/page/by-address"),
            Some(vec![refused_local.as_str()]),
        ),
        (other.url("/page/other"), Some(vec![refused_other.as_str()])),
        (
            listed.url(&format!("/redirect-to?url={behind_redirect}")),
            Some(vec![refused_other.as_str()]),
        ),
    ];
    check_cases(&deployment, &cases);
    assert_eq!(listed.hits("/page/a"), 1);
    assert_eq!(local.hits("/page/by-name"), 1);
    assert_eq!(local.hits("/page/by-address"), 0);
    assert_eq!(
        other.hits("/page/other") + other.hits("/page/behind-redirect"),
        0
    );
    assert_eq!(listed.hits("/redirect-to"), 1);
}

#[test]
fn a_worker_with_a_bad_rule_does_not_start_and_names_it() {
    for (flag, rule, expected) in [
        (
            "--download-deny",
            "10.0.0.1/8",
            "--download-deny '10.0.0.1/8' has address bits set past its /8 prefix: did you mean 10.0.0.0/8?",
        ),
        (
            "--download-allow",
            "files.example.com,https://x.example/",
            "--download-allow 'https://x.example/' is a URL",
        ),
    ] {
        let mut deployment = Deployment::new("dl-badrule");
        let worker = deployment.start_worker_without_waiting(&[flag, rule]);
        let status = deployment.wait_for_exit(worker, Duration::from_secs(30));
        let log = deployment.log(worker);
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains(expected), "{log}");
    }
}
