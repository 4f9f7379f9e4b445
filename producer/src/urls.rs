//! Reading and validating a download job's URLs: from `--url` flags and from a file or stdin, one per
//! line. Every bad one is reported (with its line number or flag position), not just the first, and
//! nothing is sent while any is bad.

use std::io::Read;
use std::path::Path;

use crate::cli::DownloadArgs;
use crate::input::MAX_ITEMS;

/// The most URLs one download job may have: their latencies are kept for the percentiles.
pub const MAX_URLS: usize = 1_000_000;

/// The URLs of a download job, in order: the `--url` flags first, then the file's lines.
pub fn download_urls(args: &DownloadArgs) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    let mut problems = Vec::new();
    for (position, raw) in args.urls.iter().enumerate() {
        match check_url(raw) {
            Ok(url) => urls.push(url),
            Err(why) => problems.push(format!("--url #{}: '{raw}' {why}", position + 1)),
        }
    }
    if let Some(path) = &args.urls_file {
        let text = read_source(path)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match check_url(line) {
                Ok(url) => urls.push(url),
                Err(why) => problems.push(format!(
                    "{} line {}: '{line}' {why}",
                    shown(path),
                    number + 1
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{} invalid URL{}, nothing was submitted:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        ));
    }
    if urls.is_empty() {
        return Err(format!(
            "{} holds no URL: give one per line, or use --url",
            args.urls_file.as_deref().map(shown).unwrap_or_default()
        ));
    }
    let limit = MAX_URLS.min(MAX_ITEMS as usize);
    if urls.len() > limit {
        return Err(format!(
            "{} URLs are more than the {limit} one download job may have: split them into several jobs",
            urls.len()
        ));
    }
    Ok(urls)
}

/// Accepts absolute http and https URLs with a host; returns the URL as the worker will fetch it.
fn check_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "has scheme '{}': only http and https can be downloaded",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(url.to_string())
}

fn read_source(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text))
    };
    read.map_err(|e| format!("cannot read --urls-file {}: {e}", shown(path)))?;
    Ok(text)
}

fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(urls: &[&str], file: Option<&Path>) -> DownloadArgs {
        DownloadArgs {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            urls_file: file.map(Path::to_owned),
            options: crate::cli::SubmitOptions {
                chunk_size: None,
                allow_unserved: false,
                wait: false,
                timeout: None,
                then: Vec::new(),
                spec: None,
            },
        }
    }

    #[test]
    fn flags_then_file_lines_in_order_skipping_blanks_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sites.txt");
        std::fs::write(
            &file,
            "# mirrors\nhttp://b.example/x\n\n  https://c.example  \n",
        )
        .unwrap();
        let urls = download_urls(&args(&["http://a.example/"], Some(&file))).unwrap();
        assert_eq!(
            urls,
            [
                "http://a.example/",
                "http://b.example/x",
                "https://c.example/"
            ]
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sites.txt");
        std::fs::write(
            &file,
            "http://ok.example/\nnot a url\nftp://files.example/\n\nhttp://\n",
        )
        .unwrap();
        let error = download_urls(&args(&["mailto:x@y"], Some(&file))).unwrap_err();
        let shown = file.display();
        for expected in [
            "4 invalid URLs, nothing was submitted".to_owned(),
            "--url #1: 'mailto:x@y' has scheme 'mailto'".to_owned(),
            format!("{shown} line 2: 'not a url' is not a URL"),
            format!("{shown} line 3: 'ftp://files.example/' has scheme 'ftp'"),
            format!("{shown} line 5: 'http://' is not a URL"),
        ] {
            assert!(error.contains(&expected), "lacks '{expected}':\n{error}");
        }
        assert!(!error.contains("line 1:"), "{error}");
    }

    #[test]
    fn empty_and_missing_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nothing\n").unwrap();
        assert!(download_urls(&args(&[], Some(&empty)))
            .unwrap_err()
            .contains("holds no URL"));
        let missing = dir.path().join("missing.txt");
        assert!(download_urls(&args(&[], Some(&missing)))
            .unwrap_err()
            .contains("cannot read --urls-file"));
    }
}
