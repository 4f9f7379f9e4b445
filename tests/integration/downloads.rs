//! Downloads end to end against the local fixture server, through the real broker: exact bytes and
//! hashes, every failure mode as a per-URL error (never a crash), retries only where they can help, and
//! bad URLs refused at submit time.

use serde_json::Value;
use taskq_tests::fixture::{closed_port_url, page_body, sha256_hex, FixtureServer};
use taskq_tests::{output_lines, Deployment};

/// Nearest-rank percentile, computed independently of the consumer's.
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    sorted[(sorted.len() * percent).div_ceil(100).max(1) - 1]
}

/// Asserts every line downloaded `expected[i]` = (final URL, body) exactly, and the aggregate adds up.
fn assert_exact(summary: &Value, urls: &[String], expected: &[(String, Vec<u8>)]) {
    let lines = output_lines(summary);
    assert_eq!(lines.len(), expected.len(), "{summary}");
    let mut latencies = Vec::new();
    for (i, (line, (final_url, body))) in lines.iter().zip(expected).enumerate() {
        let output = &line["output"];
        assert_eq!(line["index"].as_u64(), Some(i as u64));
        assert_eq!(line["input"].as_str(), Some(urls[i].as_str()));
        assert_eq!(
            output["final_url"].as_str(),
            Some(final_url.as_str()),
            "{line}"
        );
        assert_eq!(output["status"].as_u64(), Some(200), "{line}");
        assert_eq!(output["bytes"].as_u64(), Some(body.len() as u64), "{line}");
        assert_eq!(output["sha256"].as_str(), Some(sha256_hex(body).as_str()));
        assert_eq!(output["attempts"].as_u64(), Some(1), "{line}");
        latencies.push(output["elapsed_ms"].as_u64().expect("elapsed_ms"));
    }
    latencies.sort_unstable();
    let total: usize = expected.iter().map(|(_, body)| body.len()).sum();
    let n = expected.len() as u64;
    assert_eq!(
        summary["aggregate"],
        serde_json::json!({
            "ok": n, "total_bytes": total,
            "p50_ms": percentile(&latencies, 50), "p99_ms": percentile(&latencies, 99),
        })
    );
    assert_eq!(summary["kind"], "download");
    assert_eq!(summary["items"].as_u64(), Some(n));
    assert_eq!(summary["failed"].as_u64(), Some(0));
}

#[test]
fn pages_arrive_with_exact_bytes_and_hashes_from_flags_files_and_stdin() {
    let site = FixtureServer::start();
    let mut deployment = Deployment::new("dl-exact");
    deployment.start(2, &[]);

    // As the README shows: a file of URLs, one per line.
    let sizes = [0usize, 1, 1000, 100_000, 1_000_000];
    let mut urls: Vec<String> = sizes
        .iter()
        .map(|size| site.url(&format!("/page/s{size}?size={size}&latency_ms=20")))
        .collect();
    urls.push(site.url("/redirect/2"));
    let mut expected: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .zip(&urls)
        .map(|(size, url)| (url.clone(), page_body(&format!("s{size}"), *size)))
        .collect();
    expected.push((site.url("/page/0"), page_body("0", 1024)));
    let file = deployment.dir.path().join("sites.txt");
    std::fs::write(&file, format!("# fixture pages\n{}\n", urls.join("\n\n"))).unwrap();
    let file = file.to_str().unwrap();
    let summary = deployment
        .producer(&["submit", "download", "--urls-file", file, "--wait"])
        .json();
    assert_exact(&summary, &urls, &expected);
    assert_eq!(summary["chunks"].as_u64(), Some(6), "one URL per message");
    assert_eq!(site.hits("/redirect/1"), 1);

    // As the README shows: URLs as flags.
    let (a, b) = (site.url("/page/a"), site.url("/page/b?size=5"));
    let summary = deployment
        .producer(&["submit", "download", "--url", &a, "--url", &b, "--wait"])
        .json();
    let expected = [
        (a.clone(), page_body("a", 1024)),
        (b.clone(), page_body("b", 5)),
    ];
    assert_exact(&summary, &[a.clone(), b.clone()], &expected);
    assert_eq!(summary["results"][1]["output"]["bytes"].as_u64(), Some(5));

    // From stdin, several URLs per message.
    let stdin = format!("{a}\n{b}\n{a}\n");
    let summary = deployment
        .producer_stdin(
            &[
                "submit",
                "download",
                "--urls-file",
                "-",
                "--chunk-size",
                "2",
                "--wait",
            ],
            &stdin,
        )
        .json();
    let expected = [
        expected[0].clone(),
        expected[1].clone(),
        expected[0].clone(),
    ];
    assert_exact(&summary, &[a.clone(), b, a], &expected);
    assert_eq!(summary["chunks"].as_u64(), Some(2));
}

/// A URL; `Ok(final URL)` or `Err(fragments its error must contain)`; requests a path must have had.
type Case = (
    String,
    Result<String, Vec<&'static str>>,
    Option<(&'static str, u32)>,
);

#[test]
fn every_failure_mode_is_a_clear_per_url_error_and_only_transient_ones_are_retried() {
    let site = FixtureServer::start();
    let mut deployment = Deployment::new("dl-fail");
    deployment.start(
        1,
        &[
            "--http-timeout",
            "1",
            "--max-body-bytes",
            "100000",
            "--max-redirects",
            "3",
            "--download-retries",
            "2",
        ],
    );
    let refused = closed_port_url();
    let cases: Vec<Case> = vec![
        (
            site.url("/page/ok"),
            Ok(site.url("/page/ok")),
            Some(("/page/ok", 1)),
        ),
        (
            refused.clone(),
            Err(vec!["connection refused", "gave up after 3 attempts"]),
            None,
        ),
        (
            "http://no-such-host.invalid/".into(),
            Err(vec!["cannot resolve the host", "not retried"]),
            None,
        ),
        (
            site.url("/hang"),
            Err(vec![
                "no complete answer within 1s",
                "gave up after 3 attempts",
            ]),
            Some(("/hang", 3)),
        ),
        (
            site.url("/page/big?size=100001"),
            Err(vec![
                "larger than 100000 bytes (the server announced 100001)",
                "not retried",
            ]),
            Some(("/page/big", 1)),
        ),
        (
            site.url("/huge"),
            Err(vec![
                "larger than 100000 bytes; raise --max-body-bytes",
                "not retried",
            ]),
            Some(("/huge", 1)),
        ),
        (
            site.url("/status/404"),
            Err(vec!["HTTP 404 Not Found", "not retried"]),
            Some(("/status/404", 1)),
        ),
        (
            site.url("/status/503"),
            Err(vec![
                "HTTP 503 Service Unavailable",
                "gave up after 3 attempts",
            ]),
            Some(("/status/503", 3)),
        ),
        (
            site.url("/flaky/f?fail=2"),
            Ok(site.url("/flaky/f?fail=2")),
            Some(("/flaky/f", 3)),
        ),
        (
            site.url("/redirect/3"),
            Ok(site.url("/page/0")),
            Some(("/redirect/1", 1)),
        ),
        (
            site.url("/redirect/9"),
            Err(vec!["more than 3 redirects", "not retried"]),
            Some(("/redirect/6", 1)),
        ),
    ];
    let mut args = vec!["submit", "download"];
    for (url, _, _) in &cases {
        args.extend(["--url", url.as_str()]);
    }
    args.push("--wait");
    let summary = deployment.producer(&args).json();
    let lines = output_lines(&summary);
    assert_eq!(lines.len(), cases.len());
    for (line, (url, expected, _)) in lines.iter().zip(&cases) {
        assert_eq!(line["input"].as_str(), Some(url.as_str()));
        match expected {
            Ok(final_url) => {
                assert_eq!(
                    line["output"]["final_url"].as_str(),
                    Some(final_url.as_str()),
                    "{line}"
                );
                assert_eq!(line["output"]["status"].as_u64(), Some(200), "{line}");
            }
            Err(fragments) => {
                let error = line["error"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no error: {line}"));
                for fragment in fragments {
                    assert!(
                        error.contains(fragment),
                        "{url}: '{error}' lacks '{fragment}'"
                    );
                }
            }
        }
    }
    let flaky = &lines[8]["output"];
    assert_eq!(
        flaky["attempts"].as_u64(),
        Some(3),
        "503 twice, then the page"
    );
    assert_eq!(
        flaky["sha256"].as_str(),
        Some(sha256_hex(&page_body("f", 1024)).as_str())
    );
    for (url, _, hits) in &cases {
        if let Some((path, expected)) = hits {
            assert_eq!(site.hits(path), *expected, "requests for {url}");
        }
    }
    assert_eq!(
        site.hits("/redirect/5"),
        0,
        "the 4th redirect is not followed"
    );

    // The aggregate folds the successful outputs; the summary's own counts say how many failed.
    let ok = cases.iter().filter(|(_, e, _)| e.is_ok()).count() as u64;
    let aggregate = &summary["aggregate"];
    assert_eq!(aggregate["ok"].as_u64(), Some(ok), "{aggregate}");
    assert_eq!(aggregate["total_bytes"].as_u64(), Some(3 * 1024));
    assert_eq!(summary["items"].as_u64(), Some(cases.len() as u64));
    assert_eq!(summary["failed"].as_u64(), Some(cases.len() as u64 - ok));
    let log = deployment.log(0);
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("download failed; retrying"),
        "retries are logged: {log}"
    );
}

#[tokio::test]
async fn invalid_urls_are_refused_at_submit_naming_each_bad_line() {
    let deployment = Deployment::new("dl-bad");
    let file = deployment.dir.path().join("sites.txt");
    std::fs::write(
        &file,
        "http://127.0.0.1:1/fine\nnot a url\n\nftp://files.example/x\nhttp://\n# comment\nhttps://ok.example/\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // No worker runs: --allow-unserved, so the URLs are what is refused.
    let run = deployment.producer(&[
        "submit",
        "download",
        "--allow-unserved",
        "--url",
        "gopher://x/",
        "--urls-file",
        file,
        "--wait",
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    for expected in [
        "4 invalid URLs, nothing was submitted".to_owned(),
        "--url #1: 'gopher://x/' has scheme 'gopher'".to_owned(),
        format!("{file} line 2: 'not a url' is not a URL"),
        format!("{file} line 4: 'ftp://files.example/x' has scheme 'ftp': only http and https"),
        format!("{file} line 5: 'http://' is not a URL"),
    ] {
        assert!(
            stderr.contains(&expected),
            "stderr lacks '{expected}':\n{stderr}"
        );
    }
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    let neither = deployment.producer(&["submit", "download", "--allow-unserved", "--wait"]);
    assert_eq!(neither.code(), Some(2), "{}", neither.stderr());
    assert!(neither.stderr().contains("--url"), "{}", neither.stderr());

    let store = deployment.store().await;
    assert_eq!(
        store.delete_everything().await.unwrap(),
        0,
        "no job recorded"
    );
    deployment.declare().await;
    let queue = deployment.topology().task_queue("download");
    assert_eq!(deployment.queue_depth(&queue).await, 0, "nothing published");
}
