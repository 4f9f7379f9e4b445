//! The download rules' parsing and matching.

use super::*;

fn rules(allow: &[&str], deny: &[&str]) -> DownloadRules {
    let owned = |rules: &[&str]| rules.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    DownloadRules::parse(&owned(allow), &owned(deny)).expect("valid rules")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The refusal's message, or "ok".
fn address(rules: &DownloadRules, name: Option<&str>, address: &str) -> String {
    match rules.check_address(name, ip(address)) {
        Ok(()) => "ok".into(),
        Err(refusal) => refusal.to_string(),
    }
}

fn name(rules: &DownloadRules, name: &str) -> String {
    match rules.check_name(name) {
        Ok(()) => "ok".into(),
        Err(refusal) => refusal.to_string(),
    }
}

#[test]
fn rules_parse_to_ranges_hosts_and_suffixes() {
    let parsed = |text: &str| text.parse::<Rule>().unwrap().to_string();
    assert_eq!(parsed("10.0.0.0/8"), "10.0.0.0/8");
    assert_eq!(parsed(" 10.1.2.3 "), "10.1.2.3/32");
    assert_eq!(parsed("fd00::/8"), "fd00::/8");
    assert_eq!(parsed("[::1]"), "::1/128");
    assert_eq!(parsed("Files.Example.COM."), "files.example.com");
    assert_eq!(parsed("*.Example.com"), "*.example.com");
    assert_eq!(
        "*.example.com".parse::<Rule>().unwrap(),
        Rule::Suffix(".example.com".into())
    );
}

#[test]
fn bad_rules_say_what_is_wrong() {
    for (rule, expected) in [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
        ("10.0.0.0/33", "longer than an address (32 bits)"),
        ("fd00::/129", "longer than an address (128 bits)"),
        ("10.0.0.0/x", "'/x' is not a prefix length"),
        ("10.0.0/8", "'10.0.0' is not an IP address"),
        ("http://files.example.com/", "is a URL"),
        (
            "files.example.com:8080",
            "a port or a scheme is not part of a rule",
        ),
        ("a.*.example.com", "not a leading '*.'"),
        ("*", "not a leading '*.'"),
        ("exa mple.com", "is not a host name"),
        ("a..b", "is not a host name"),
        ("10.0.0", "write addresses in full"),
        (".", "is empty"),
    ] {
        let error = rule.parse::<Rule>().unwrap_err();
        assert!(error.contains(expected), "{rule}: {error}");
    }
    let error =
        DownloadRules::parse(&["10.0.0.0/8".into()], &["x/8".into(), "ok".into()]).unwrap_err();
    assert_eq!(
        error,
        "--download-deny 'x/8' 'x' is not an IP address: a range is written 10.0.0.0/8 or fd00::/8"
    );
    // Blank entries (a trailing comma, an empty variable) are no rules.
    assert_eq!(
        DownloadRules::parse(&[" ".into()], &["".into()]).unwrap(),
        DownloadRules::default()
    );
}

#[test]
fn by_default_link_local_and_metadata_are_refused_and_the_rest_allowed() {
    let rules = DownloadRules::default();
    for allowed in [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.1.1",
        "93.184.216.34",
        "2001:db8::1",
    ] {
        assert_eq!(address(&rules, None, allowed), "ok", "{allowed}");
    }
    assert_eq!(
        address(&rules, None, "169.254.169.254"),
        "169.254.169.254 is denied by default (the instance metadata address of AWS, Google Cloud, \
         Azure and OpenStack); --download-allow 169.254.169.254/32 would allow it"
    );
    assert_eq!(
        address(&rules, Some("evil.example"), "169.254.1.1"),
        "evil.example (169.254.1.1) is denied by default (IPv4 link-local); --download-allow \
         169.254.0.0/16 would allow it"
    );
    assert!(address(&rules, None, "fe80::1").contains("fe80::/10"));
    assert!(address(&rules, None, "fd00:ec2::254").contains("fd00:ec2::254/128"));
    assert!(address(&rules, None, "0.0.0.0").contains("0.0.0.0/8"));
    assert!(address(&rules, None, "::").contains("::/128"));
    // An IPv4 address written as IPv6 is the same address.
    assert!(address(&rules, None, "::ffff:169.254.169.254").contains("169.254.169.254 is denied"));
    assert_eq!(
        name(&rules, "Metadata.Google.Internal."),
        "host metadata.google.internal is denied by default (Google Cloud instance metadata); \
         --download-allow metadata.google.internal would allow it"
    );
    assert_eq!(name(&rules, "files.example.com"), "ok");
}

#[test]
fn only_an_allow_rule_inside_a_default_lifts_it() {
    let link_local = rules(&["169.254.0.0/16"], &[]);
    assert_eq!(address(&link_local, None, "169.254.1.1"), "ok");
    assert!(
        address(&link_local, None, "169.254.169.254").contains("169.254.169.254/32 would allow")
    );
    let metadata = rules(&["169.254.169.254", "metadata.google.internal"], &[]);
    assert_eq!(address(&metadata, None, "169.254.169.254"), "ok");
    assert_eq!(name(&metadata, "metadata.google.internal"), "ok");
    // Allowing everything is not allowing the metadata service.
    let everything = rules(&["0.0.0.0/0", "::/0", "*.internal"], &[]);
    assert_eq!(address(&everything, None, "10.0.0.1"), "ok");
    assert!(address(&everything, None, "169.254.169.254").contains("denied by default"));
    assert!(name(&everything, "metadata.google.internal").contains("denied by default"));
    // An allowed name does not lift an address default: a name can be pointed anywhere.
    let by_name = rules(&["files.example.com"], &[]);
    assert!(address(&by_name, Some("files.example.com"), "169.254.169.254").contains("by default"));
}

#[test]
fn deny_rules_refuse_names_and_ranges_and_win_over_allow_rules() {
    let rules = rules(
        &["10.0.0.0/8"],
        &["10.0.0.5", "*.corp.example", "admin.example", "fd00::/8"],
    );
    assert_eq!(address(&rules, None, "10.0.0.6"), "ok");
    assert_eq!(
        address(&rules, None, "10.0.0.5"),
        "10.0.0.5 is denied by --download-deny 10.0.0.5/32"
    );
    assert_eq!(
        address(&rules, Some("db.example"), "fd00::1"),
        "db.example (fd00::1) is denied by --download-deny fd00::/8"
    );
    assert_eq!(
        name(&rules, "git.CORP.example"),
        "host git.corp.example is denied by --download-deny *.corp.example"
    );
    // The suffix is for names under the domain, not the domain itself.
    assert_eq!(name(&rules, "corp.example"), "ok");
    assert_eq!(name(&rules, "notcorp.example"), "ok");
    assert!(name(&rules, "admin.example").contains("--download-deny admin.example"));
    assert_eq!(name(&rules, "sub.admin.example"), "ok");
}

#[test]
fn an_allow_list_admits_its_names_and_ranges_only() {
    let rules = rules(&["files.example.com", "*.cdn.example", "10.1.0.0/16"], &[]);
    assert_eq!(
        address(&rules, Some("files.example.com"), "203.0.113.7"),
        "ok"
    );
    assert_eq!(
        address(&rules, Some("a.b.cdn.example"), "203.0.113.8"),
        "ok"
    );
    assert_eq!(address(&rules, Some("other.example"), "10.1.2.3"), "ok");
    assert_eq!(address(&rules, None, "10.1.2.3"), "ok");
    assert_eq!(
        address(&rules, None, "10.2.0.1"),
        "10.2.0.1 matches no --download-allow rule (files.example.com, *.cdn.example, 10.1.0.0/16)"
    );
    assert!(address(&rules, Some("other.example"), "203.0.113.9")
        .starts_with("other.example (203.0.113.9) matches no"));
    // A range in the list may admit any name, so names are checked with their addresses.
    assert_eq!(name(&rules, "other.example"), "ok");
    let names_only = self::rules(&["files.example.com"], &[]);
    assert_eq!(name(&names_only, "files.example.com"), "ok");
    assert_eq!(
        name(&names_only, "other.example"),
        "host other.example matches no --download-allow rule (files.example.com)"
    );
}
