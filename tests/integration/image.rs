//! `producer submit image-blur` end to end: a PNG blurred in tiles by the real workers, written by the
//! consumer and fetched by the producer, compared pixel for pixel (decoded, since PNG compression may
//! differ) with the whole-image blur of `taskq_image::Blur::blur_image` and of the `blur-whole` binary.
//! Tiles of one pixel row, of a prime size, larger than the image and not square; 1 to 3 passes; RGB,
//! RGBA and grey at 8 and 16 bits; a later pass streaming behind the earlier one (read from the recorded
//! stage timestamps); a worker killed with SIGKILL mid-job; a consumer that starts (or restarts) with
//! every tile's result already waiting; and no partial PNG left beside the finished ones. Bad input:
//! [`bad_input`]. Test images come from a seeded generator ([`pictures`]), so every run blurs the same
//! pixels.

mod bad_input;
mod pictures;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use taskq_common::job::JobId;
use taskq_image::{Blur, PixelFormat, Region};
use taskq_tests::{binary, eventually, Deployment};

use pictures::{assert_same_pixels, noise_image, read_png, write_png, SEED};

/// The kind the producer submits.
const KIND: &str = "image-blur";

/// The path of a file, as the producer's argument.
fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Tiles of `tile` (`T` or `WxH`, clipped to the image) over a `width` x `height` image.
fn tile_count(width: u32, height: u32, tile: &str) -> u64 {
    let (w, h) = match tile.split_once('x') {
        Some((w, h)) => (w.parse::<u32>().unwrap(), h.parse::<u32>().unwrap()),
        None => (tile.parse().unwrap(), tile.parse().unwrap()),
    };
    u64::from(width.div_ceil(w.min(width))) * u64::from(height.div_ceil(h.min(height)))
}

/// One `image-blur` job: its summary and the decoded `--output`. Asserts it completed, that the
/// consumer's copy is the file the producer wrote, and the counts of every pass.
fn blur_through_taskq(
    deployment: &Deployment,
    input: &Path,
    sigma: &str,
    tile: &str,
    passes: u32,
) -> (Value, Region) {
    let case = format!("tile {tile}, {passes} pass(es)");
    let output = deployment
        .dir
        .path()
        .join(format!("out-{}-{passes}.png", tile.replace('x', "by")));
    let run = deployment.producer(&[
        "submit",
        KIND,
        "--input",
        text(input),
        "--output",
        text(&output),
        "--sigma",
        sigma,
        "--tile",
        tile,
        "--passes",
        &passes.to_string(),
        "--timeout",
        "100",
    ]);
    let summary = run.json();
    assert_eq!(summary["status"], "completed", "{case}: {summary}");
    assert_eq!(summary["kind"], KIND, "{case}: {summary}");
    let written = std::fs::read(&output).unwrap_or_else(|e| panic!("{case}: --output: {e}"));
    assert_eq!(
        summary["png_bytes"].as_u64(),
        Some(written.len() as u64),
        "{case}: png_bytes is the size of --output: {summary}"
    );
    let consumers_copy = summary["output"].as_str().expect("output path");
    assert!(
        std::fs::read(consumers_copy).expect("the consumer's copy") == written,
        "{case}: --output is the consumer's copy {consumers_copy}, byte for byte"
    );
    let image = read_png(&output);
    let rect = image.rect();
    let tiles = tile_count(rect.width, rect.height, tile);
    assert_eq!(
        (summary["chunks"].as_u64(), summary["items"].as_u64()),
        (Some(tiles), Some(tiles)),
        "{case}: one chunk per tile: {summary}"
    );
    assert_eq!(summary["failed"].as_u64(), Some(0), "{case}: {summary}");
    if passes > 1 {
        let stages = summary["stages"].as_array().expect("stages");
        let counts: Vec<(&str, Option<u64>, Option<u64>)> = stages
            .iter()
            .map(|stage| {
                (
                    stage["edge"].as_str().unwrap_or("?"),
                    stage["chunks"].as_u64(),
                    stage["chunks_done"].as_u64(),
                )
            })
            .collect();
        let mut expected = vec![("source", Some(tiles), Some(tiles))];
        expected.resize(passes as usize, ("neighbours", Some(tiles), Some(tiles)));
        assert_eq!(counts, expected, "{case}: every pass ran every tile once");
    }
    (summary, image)
}

#[test]
fn tiles_of_every_shape_and_several_passes_give_the_whole_image_blur_exactly() {
    let mut deployment = Deployment::new("blurexact");
    // Both worker binaries serve image-blur; they share the tiles.
    deployment.start_worker(&[]);
    deployment.start_test_worker(&[]);
    deployment.start_consumer();
    let image = noise_image(61, 47, PixelFormat::RGB8, SEED);
    let input = write_png(&deployment, "noise-rgb8.png", &image);
    let blur = Blur::new(1.5).expect("sigma");

    for passes in [1, 3] {
        let expected = blur.blur_image(&image, passes);
        // One pixel row, a prime, larger than the image (one tile), not square.
        for tile in ["61x1", "7", "500", "13x5"] {
            let (_, got) = blur_through_taskq(&deployment, &input, "1.5", tile, passes);
            assert_same_pixels(
                &got,
                &expected,
                &format!("RGB8, tile {tile}, {passes} passes"),
            );
        }
    }
}

#[test]
fn sixteen_bit_rgba_and_grey_images_blur_exactly_like_blur_whole() {
    let mut deployment = Deployment::new("blurformats");
    deployment.start(2, &[]);
    let blur = Blur::new(1.5).expect("sigma");
    let cases = [
        ("rgba16", 40, 33, PixelFormat::RGBA16, "9x16"),
        ("grey8", 33, 20, PixelFormat::GREY8, "8"),
    ];
    for (name, width, height, format, tile) in cases {
        let image = noise_image(width, height, format, SEED + u64::from(width));
        let input = write_png(&deployment, &format!("{name}.png"), &image);
        let expected = blur.blur_image(&image, 2);

        let (_, got) = blur_through_taskq(&deployment, &input, "1.5", tile, 2);
        assert_same_pixels(&got, &expected, &format!("{name}, tile {tile}, 2 passes"));

        // The reference binary says the same as the library it is built on.
        let reference = deployment.dir.path().join(format!("{name}-whole.png"));
        let whole = std::process::Command::new(binary("blur-whole"))
            .args([text(&input), text(&reference), "1.5", "2"])
            .output()
            .expect("run blur-whole");
        assert!(
            whole.status.success(),
            "blur-whole: {}",
            String::from_utf8_lossy(&whole.stderr)
        );
        assert_same_pixels(&read_png(&reference), &got, &format!("{name}: blur-whole"));
    }
}

#[test]
fn a_later_pass_starts_before_the_earlier_pass_is_over() {
    let mut deployment = Deployment::new("blurstream");
    deployment.start(2, &[]);
    let image = noise_image(256, 256, PixelFormat::RGB8, SEED);
    let input = write_png(&deployment, "noise-256.png", &image);

    let (summary, got) = blur_through_taskq(&deployment, &input, "2", "32", 3);

    let expected = Blur::new(2.0).expect("sigma").blur_image(&image, 3);
    assert_same_pixels(&got, &expected, "256x256, tile 32, 3 passes");
    let at = |stage: usize, field: &str| {
        summary["stages"][stage][field]
            .as_u64()
            .unwrap_or_else(|| panic!("stage {stage} has {field}: {summary}"))
    };
    // Pass 2's first tile needs only tiles 0, 1, 8 and 9 of pass 1; the other 60 tiles of pass 1 are
    // still being cut, queued or blurred then. Any barrier between passes would make this false.
    let (first_finished, second_started) = (at(0, "finished_ms"), at(1, "started_ms"));
    assert!(
        second_started < first_finished,
        "pass 2 starts before pass 1 is over: it started at {second_started}, pass 1 finished at \
         {first_finished}: {summary}"
    );
    assert!(at(0, "started_ms") <= second_started, "{summary}");
    assert!(at(1, "started_ms") <= at(2, "started_ms"), "{summary}");
}

#[test]
fn a_completed_image_leaves_only_its_png_in_the_consumer_directory() {
    let mut deployment = Deployment::new("blurleftover");
    deployment.start(2, &[]);
    let image = noise_image(256, 256, PixelFormat::RGB8, SEED);
    let input = write_png(&deployment, "noise-256.png", &image);

    let mut jobs = Vec::new();
    // The race that leaves a stray temporary is at a job's first results: several jobs, many tiles.
    for (tile, passes) in [("8", 1), ("16", 1), ("8x16", 1), ("32", 2)] {
        let (summary, _) = blur_through_taskq(&deployment, &input, "1", tile, passes);
        jobs.push(format!(
            "{}.png",
            summary["job_id"].as_str().expect("job id")
        ));
    }

    let mut files: Vec<String> = std::fs::read_dir(deployment.output_dir())
        .expect("the consumer's output directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    jobs.sort();
    assert_eq!(
        files, jobs,
        "each job's PNG and nothing else (no partial `<job>.png.tmp-*`)"
    );
}

#[tokio::test]
async fn a_consumer_that_starts_after_the_tiles_were_blurred_writes_the_whole_image() {
    let mut deployment = Deployment::new("blurlate");
    deployment.start_workers(taskq_tests::WORKER, 2, &[]);
    let image = noise_image(512, 512, PixelFormat::RGB8, SEED);
    let input = write_png(&deployment, "noise-512.png", &image);
    let expected = Blur::new(2.0).expect("sigma").blur_image(&image, 1);
    // A race shows in some rounds only (on this 2-core machine in about 6 of 10); three rounds.
    for round in 1..=3 {
        let output = deployment.dir.path().join(format!("late-{round}.png"));
        let running = deployment.producer_in_background(&[
            "submit",
            KIND,
            "--input",
            text(&input),
            "--output",
            text(&output),
            "--sigma",
            "2",
            "--tile",
            "32",
            "--timeout",
            "100",
        ]);
        // Every tile blurred and its result waiting: the consumer (started late, or restarted) then
        // receives them all at once.
        results_waiting(&deployment).await;
        let consumer = deployment.start_consumer();

        let run = running.finish(Duration::from_secs(120));
        let summary = run.stdout_json();
        assert_eq!(
            (run.code(), &summary["status"]),
            (Some(0), &Value::from("completed")),
            "round {round}: {summary}\n{}",
            run.stderr()
        );
        assert_same_pixels(&read_png(&output), &expected, "a late consumer");
        deployment.terminate(consumer);
    }
}

/// Waits until no tile is queued and the results queue's depth is steady (and not 0).
async fn results_waiting(deployment: &Deployment) {
    let topology = deployment.topology();
    let (tasks, results) = (topology.task_queue(KIND), topology.results_queue());
    let last = std::cell::Cell::new(None);
    let what = "every tile's result to wait in the results queue";
    eventually(what, Duration::from_secs(60), || {
        let (tasks, results, last) = (&tasks, &results, &last);
        async move {
            let waiting = deployment.queue_stats(results).await.map(|q| q.messages);
            let queued = deployment.queue_stats(tasks).await.map(|q| q.messages);
            let steady = waiting.is_some_and(|n| n > 0) && waiting == last.get();
            last.set(waiting);
            (queued == Some(0) && steady).then_some(())
        }
    })
    .await;
}

/// The job the namespace holds, once the producer has recorded it.
async fn the_job(deployment: &Deployment) -> JobId {
    let store = deployment.store().await;
    eventually(
        "the image job to be recorded",
        Duration::from_secs(30),
        || {
            let store = &store;
            async move { store.job_ids().await.ok()?.first().copied() }
        },
    )
    .await
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_the_image_exact() {
    let mut deployment = Deployment::new("blurkill");
    let workers = deployment.start_workers(taskq_tests::WORKER, 2, &[]);
    deployment.start_consumer();
    let image = noise_image(512, 384, PixelFormat::RGB8, SEED);
    let input = write_png(&deployment, "noise-512.png", &image);
    let output = deployment.dir.path().join("killed.png");
    let running = deployment.producer_in_background(&[
        "submit",
        KIND,
        "--input",
        text(&input),
        "--output",
        text(&output),
        "--sigma",
        "2",
        "--tile",
        "32",
        "--passes",
        "3",
        "--timeout",
        "150",
    ]);
    let job = the_job(&deployment).await;
    let store = deployment.store().await;
    // Kill once the first pass is well under way: tiles of every pass are then queued or running.
    let last_done = eventually("40 tiles of pass 1 done", Duration::from_secs(60), || {
        let store = &store;
        async move {
            let progress = store.stage_progress(job).await.ok()??;
            (progress.stages[0].chunks_done >= 40).then(|| progress.stages[2].chunks_done)
        }
    })
    .await;
    deployment.kill(workers[0]);
    let tiles = 16 * 12;
    assert!(
        last_done < tiles,
        "the kill came before the job's end ({last_done} of {tiles} last-pass tiles were done): \
         make the image larger if this machine is that fast"
    );

    let run = running.finish(Duration::from_secs(180));
    let summary = run.json();
    assert_eq!(summary["status"], "completed", "{summary}");
    assert_eq!(
        summary["stages"][2]["chunks_done"].as_u64(),
        Some(u64::from(tiles)),
        "{summary}"
    );
    let expected = Blur::new(2.0).expect("sigma").blur_image(&image, 3);
    assert_same_pixels(&read_png(&output), &expected, "after a SIGKILL");
}
