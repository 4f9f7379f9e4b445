//! Bad `image-blur` input refused with exit 2 and a message that says what is wrong, before anything is
//! recorded or published: not a PNG, truncated, damaged, interlaced, sigma, tile size and passes out of
//! range, and tiles whose messages would pass 12 MiB.

use std::path::Path;
use std::time::{Duration, Instant};

use taskq_common::job::JobId;
use taskq_image::{PixelFormat, Rect, Region};
use taskq_tests::{Deployment, Run};

use super::pictures::{
    assemble_png, body_offset, chunks, noise_image, png_bytes, write_file, write_png, SEED,
};
use super::{text, KIND};

/// What is wrong with a run that should have been refused with `fragment` in its message: not exit 2,
/// another message, output on stdout, `--output` written, a job recorded (beyond `jobs_before`), tiles left queued, or a file
/// in the consumer's output directory. Empty when it was refused cleanly.
async fn refusal_problems(
    deployment: &Deployment,
    run: &Run,
    output: &Path,
    fragment: &str,
    jobs_before: &[JobId],
) -> Vec<String> {
    let mut wrong = Vec::new();
    if run.code() != Some(2) {
        wrong.push(format!("exit code {:?}, not 2", run.code()));
    }
    if !run.stderr().contains(fragment) {
        wrong.push(format!("the message does not say '{fragment}'"));
    }
    if !run.stdout().is_empty() {
        wrong.push("a summary or job id on stdout".to_owned());
    }
    if output.exists() {
        wrong.push("--output was written".to_owned());
    }
    let store = deployment.store().await;
    let jobs = store.job_ids().await.expect("job ids");
    for job in jobs.into_iter().filter(|job| !jobs_before.contains(job)) {
        let state = store.job_state(job).await.expect("job state");
        let described = state.map_or("gone".to_owned(), |state| {
            format!(
                "status {}, {} of {} tiles done",
                state.status.as_str(),
                state.chunks_done,
                state.spec.total_chunks
            )
        });
        wrong.push(format!("job {job} was recorded ({described})"));
    }
    let queue = deployment.topology().task_queue(KIND);
    let queued = deployment.queue_stats(&queue).await.map(|q| q.messages);
    if !matches!(queued, None | Some(0)) {
        wrong.push(format!("tiles were left queued: {queued:?}"));
    }
    let written = consumer_files(deployment);
    if !written.is_empty() {
        wrong.push(format!("the consumer wrote {written:?}"));
    }
    wrong
}

/// The files in the consumer's output directory.
fn consumer_files(deployment: &Deployment) -> Vec<String> {
    std::fs::read_dir(deployment.output_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `producer submit image-blur --input INPUT --output (a fresh path) ARGS`, `--sigma 1` unless ARGS
/// give one; returns what is wrong with its refusal with `fragment` (see [`refusal_problems`]).
async fn refuse_input(
    deployment: &Deployment,
    input: &Path,
    args: &[&str],
    fragment: &str,
) -> Vec<String> {
    let output = deployment
        .dir
        .path()
        .join(format!("refused-{}.png", case_name(fragment, args)));
    let mut all = vec![
        "submit",
        KIND,
        "--input",
        text(input),
        "--output",
        text(&output),
    ];
    if !args.iter().any(|arg| arg.starts_with("--sigma")) {
        all.extend(["--sigma", "1"]);
    }
    all.extend(args);
    let jobs_before = deployment.store().await.job_ids().await.expect("job ids");
    let run = deployment.producer(&all);
    let mut wrong = refusal_problems(deployment, &run, &output, fragment, &jobs_before).await;
    if !wrong.is_empty() {
        wrong.push(format!("(stderr: {})", run.stderr().trim_end()));
    }
    wrong
}

/// Asserts [`refuse_input`] found nothing wrong.
async fn assert_input_refused(
    deployment: &Deployment,
    input: &Path,
    args: &[&str],
    fragment: &str,
) {
    let wrong = refuse_input(deployment, input, args, fragment).await;
    assert!(
        wrong.is_empty(),
        "refusing {} {args:?} ('{fragment}'):\n  {}",
        input.display(),
        wrong.join("\n  ")
    );
}

/// A file name part unique to a case.
fn case_name(fragment: &str, args: &[&str]) -> String {
    format!("{fragment}{}", args.join(""))
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

#[tokio::test]
async fn bad_input_is_refused_with_exit_2_before_anything_is_recorded() {
    let mut deployment = Deployment::new("blurbad");
    deployment.start_worker(&[]);
    deployment.start_consumer();
    let good = png_bytes(&noise_image(61, 47, PixelFormat::RGB8, SEED));
    let good_path = write_file(&deployment, "good.png", &good);
    let mut damaged = good.clone();
    damaged[body_offset(&good, b"IDAT") + 20] ^= 0x40;
    let mut interlaced = chunks(&good);
    interlaced[0].1[12] = 1;
    let files = [
        (
            "notes.png",
            b"just some text, not an image\n".to_vec(),
            "not a PNG",
        ),
        (
            "truncated.png",
            good[..good.len() * 2 / 3].to_vec(),
            "truncated",
        ),
        ("no-end.png", good[..good.len() - 12].to_vec(), "truncated"),
        ("damaged.png", damaged, "damaged"),
        ("interlaced.png", assemble_png(&interlaced), "interlaced"),
    ];
    for (name, bytes, fragment) in files {
        let input = write_file(&deployment, name, &bytes);
        assert_input_refused(&deployment, &input, &[], fragment).await;
    }

    let arguments: [(&[&str], &str); 10] = [
        (&["--sigma", "0"], "out of range"),
        (&["--sigma=-1"], "out of range"),
        (&["--sigma", "50.5"], "out of range"),
        (&["--sigma", "NaN"], "out of range"),
        (&["--tile", "0"], "a tile dimension is 0"),
        (&["--tile", "16x0"], "a tile dimension is 0"),
        (&["--tile", "big"], "not a whole number"),
        (&["--tile", "7x"], "a number is missing"),
        (&["--passes", "0"], "0 is not in 1..=16"),
        (&["--passes", "17"], "17 is not in 1..=16"),
    ];
    for (args, fragment) in arguments {
        assert_input_refused(&deployment, &good_path, args, fragment).await;
    }

    // One pass of a 1400x1400 RGBA16 image in one tile (a tile larger than the image is clipped to it:
    // still 21 MB of base64), and a second pass of 600x600 RGB8 tiles, each carrying its 3x3
    // neighbours' tiles (13 MB).
    let flat16 = Region::zeroed(Rect::new(0, 0, 1400, 1400), PixelFormat::RGBA16);
    let big16 = write_png(&deployment, "big16.png", &flat16);
    assert_input_refused(&deployment, &big16, &["--tile", "5000"], "or smaller").await;
    let flat8 = Region::zeroed(Rect::new(0, 0, 1024, 1024), PixelFormat::RGB8);
    let big8 = write_png(&deployment, "big8.png", &flat8);
    let two_passes = ["--tile", "600", "--passes", "2"];
    assert_input_refused(&deployment, &big8, &two_passes, "or smaller").await;
}

#[tokio::test]
async fn image_data_cut_short_inside_well_formed_chunks_is_refused_before_anything_is_recorded() {
    let mut deployment = Deployment::new("blurcut");
    deployment.start_worker(&[]);
    deployment.start_consumer();
    let parts = chunks(&png_bytes(&noise_image(256, 256, PixelFormat::RGB8, SEED)));
    let data: Vec<u8> = parts
        .iter()
        .filter(|(kind, _)| kind == b"IDAT")
        .flat_map(|(_, body)| body.clone())
        .collect();
    let (header, end) = (parts[0].clone(), (*b"IEND", Vec::new()));
    // Every chunk whole with a good checksum, but the compressed pixels stop three quarters in (an
    // exporter that died mid-stream and still closed the file), or are scrambled there.
    let cut = [
        header.clone(),
        (*b"IDAT", data[..data.len() * 3 / 4].to_vec()),
        end.clone(),
    ];
    let mut scrambled = data.clone();
    let middle = scrambled.len() * 3 / 4;
    scrambled[middle..middle + 40]
        .iter_mut()
        .for_each(|b| *b ^= 0x5a);
    let scrambled = [header, (*b"IDAT", scrambled), end];
    let cases = [
        ("cut.png", assemble_png(&cut), "truncated"),
        ("scrambled.png", assemble_png(&scrambled), "damaged"),
    ];

    let mut wrong = Vec::new();
    for (name, bytes, fragment) in cases {
        let input = write_file(&deployment, name, &bytes);
        let problems = refuse_input(&deployment, &input, &["--tile", "16"], fragment).await;
        wrong.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
        // Whatever happened, the consumer ends with no partial PNG (bounded wait: it may be closing it).
        let left = eventually_no_consumer_files(&deployment, Duration::from_secs(10)).await;
        if !left.is_empty() {
            wrong.push(format!(
                "{name}: 10 s later the consumer still holds {left:?}"
            ));
        }
        for file in left {
            let _ = std::fs::remove_file(deployment.output_dir().join(file));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Waits up to `limit` for the consumer's output directory to be empty; returns what is left in it.
async fn eventually_no_consumer_files(deployment: &Deployment, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = consumer_files(deployment);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_refused_tile_size_names_a_message_size_above_the_limit() {
    let deployment = Deployment::new("blurlimit");
    // A second pass of 600x600 RGB8 tiles carries 3x3 of them in base64: 12.36 MiB, just above 12 MiB.
    let flat8 = Region::zeroed(Rect::new(0, 0, 1024, 1024), PixelFormat::RGB8);
    let input = write_png(&deployment, "big8.png", &flat8);
    let output = deployment.dir.path().join("out.png");
    let run = deployment.producer(&[
        "submit",
        KIND,
        "--input",
        text(&input),
        "--output",
        text(&output),
        "--sigma",
        "1",
        "--tile",
        "600",
        "--passes",
        "2",
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("messages of 12.4 MiB") && stderr.contains("use --tile 591 or smaller"),
        "the size named is above the 12 MiB limit, and the advice is a tile that fits: {stderr}"
    );
}
