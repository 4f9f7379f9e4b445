//! The `image` group: `producer submit image-blur` on a 4096x4096 RGB8 image (sigma 3; 1 and 3 passes;
//! tiles of 256, the default, and 512; two workers), submit to `--output` written, beside the same blur
//! by `blur-whole` on every core and Pillow's `GaussianBlur(3)` applied as many times. Each taskq result
//! is checked pixel for pixel against blur-whole's before its time is reported. Also: when the first
//! tile of the last pass was recorded (streaming), each process's CPU time and peak resident memory
//! (VmHWM), and RabbitMQ's and Redis's CPU, so a missed target says where the time went.
//!
//! Target: taskq within 1.5x of blur-whole on this 2-core machine. Bounded: every run has a limit.

mod measure;

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taskq_common::job::now_ms;
use taskq_tests::{amqp_url, binary, redis_url, Deployment};

use crate::{Row, WORKERS};

use measure::{cpu_seconds, peak_kb, service_pids, Measured, Timed};

/// The image is SIDE x SIDE pixels.
const SIDE: u32 = 4096;
/// The seed of the input's noise.
const SEED: u64 = 0x1a6e_b1a5;
/// The blur's sigma, as every tool is given it.
const SIGMA: &str = "3";
/// Longest any one run may take before it is killed and reported as such.
const LIMIT: Duration = Duration::from_secs(360);
/// Pillow's blur applied `argv[3]` times; prints read, blur and write seconds.
const PILLOW: &str = "import sys, time\nfrom PIL import Image, ImageFilter\n\
t0 = time.perf_counter()\nim = Image.open(sys.argv[1]); im.load()\nt1 = time.perf_counter()\n\
for _ in range(int(sys.argv[3])):\n    im = im.filter(ImageFilter.GaussianBlur(3))\n\
t2 = time.perf_counter()\nim.save(sys.argv[2])\nt3 = time.perf_counter()\n\
print(f'read {t1 - t0:.2f} s, blur {t2 - t1:.2f} s, write {t3 - t2:.2f} s')\n";

/// Runs the group and adds its rows.
pub fn blur_side_by_side(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.png");
    let made = Instant::now();
    write_input(&input);
    let size = std::fs::metadata(&input).map_or(0, |m| m.len());
    eprintln!(
        "image: input {SIDE}x{SIDE} RGB8, {:.1} MB PNG, made in {:.1} s",
        size as f64 / 1e6,
        made.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for passes in [1u32, 3] {
        let k = passes.to_string();
        let reference = dir.path().join(format!("whole-{passes}.png"));
        let whole_args = [text(&input), text(&reference), SIGMA, &k, "0"];
        let whole = Timed::start(&binary("blur-whole"), &whole_args, &[]).finish(LIMIT);
        let pillow_out = dir.path().join(format!("pillow-{passes}.png"));
        let pillow_args = ["-c", PILLOW, text(&input), text(&pillow_out), &k];
        let pillow = Timed::start(Path::new("python3"), &pillow_args, &[]).finish(LIMIT);
        let pillow_figure = if pillow.success {
            format!(
                "{:.2} s ({}; one thread, a box-blur approximation)",
                pillow.wall.as_secs_f64(),
                pillow.stdout.trim()
            )
        } else {
            "not run (python3 -m pip install pillow)".to_owned()
        };
        let expected = whole.success.then(|| decode(&reference));
        for tile in ["256", "512"] {
            let run = TaskqRun::run(dir.path(), &input, tile, passes);
            let exact = match (&expected, run.producer.success) {
                (Some(expected), true) if decode(&run.output) == *expected => "exact",
                (Some(_), true) => "DIFFERENT PIXELS from blur-whole",
                _ => "not compared",
            };
            let ratio = run.producer.wall.as_secs_f64() / whole.wall.as_secs_f64();
            rows.push(Row {
                scenario: format!(
                    "image-blur {SIDE}x{SIDE} RGB8, sigma {SIGMA}, {passes} pass(es), tile {tile}, {WORKERS} workers: submit to --output written"
                ),
                figure: format!(
                    "{} = {ratio:.2}x blur-whole ({:.2} s on {cores} cores: {}); Pillow GaussianBlur(3) x{passes}: {pillow_figure}; {exact}",
                    run.outcome(),
                    whole.wall.as_secs_f64(),
                    whole.stderr.trim()
                ),
                target: "<= 1.5x blur-whole".into(),
            });
            rows.push(Row {
                scenario: format!("  timeline ({passes} pass(es), tile {tile})"),
                figure: run.timeline(),
                target: "last pass's first tile well before the end".into(),
            });
            rows.push(Row {
                scenario: format!("  CPU and peak memory ({passes} pass(es), tile {tile})"),
                figure: format!(
                    "{}; blur-whole {}; Pillow {}",
                    run.resources(),
                    whole.resources(),
                    pillow.resources()
                ),
                target: "-".into(),
            });
        }
    }
}

/// The input: smooth gradients with noise on top, so it compresses like a photograph rather than a
/// flat test card or pure noise. Seeded: the same image every run.
fn write_input(path: &Path) {
    let file = std::fs::File::create(path).expect("create the input");
    let mut encoder = png::Encoder::new(BufWriter::new(file), SIDE, SIDE);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("PNG header");
    let mut state = SEED;
    let mut noise = move || {
        // SplitMix64, reduced to -12..=12.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % 25) as i32 - 12
    };
    let side = SIDE as i32;
    let mut data = Vec::with_capacity((SIDE * SIDE * 3) as usize);
    for y in 0..side {
        for x in 0..side {
            let wave = ((x + 2 * y) % 512 - 256).abs() / 2;
            for base in [x / 16, y / 16, 64 + wave] {
                data.push((base + noise()).clamp(0, 255) as u8);
            }
        }
    }
    writer.write_image_data(&data).expect("PNG data");
    writer.finish().expect("PNG end");
}

/// A PNG's samples, as stored.
fn decode(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).expect("open a PNG");
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut data = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut data).expect("PNG pixels");
    data.truncate(info.buffer_size());
    data
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// One `image-blur` job in a fresh deployment (so each process's peak memory is this job's), with the
/// Redis-side view of its progress polled while it runs.
struct TaskqRun {
    producer: Measured,
    output: PathBuf,
    summary: serde_json::Value,
    /// When the producer logged that every tile was published.
    published: Option<Duration>,
    /// When the consumer first recorded a tile of the last pass.
    first_last_pass_tile: Option<Duration>,
    /// Epoch ms at the start, to place the summary's stage timestamps.
    started_ms: u64,
    /// (name, CPU seconds during the job, peak resident kB) of each worker and the consumer.
    processes: Vec<(String, f64, u64)>,
    /// CPU seconds of RabbitMQ and Redis during the job.
    services: Vec<(String, f64)>,
}

impl TaskqRun {
    fn run(dir: &Path, input: &Path, tile: &str, passes: u32) -> TaskqRun {
        let mut deployment = Deployment::new("bench-image");
        deployment.start(WORKERS, &[]);
        let names: Vec<String> = (0..WORKERS)
            .map(|i| format!("worker {}", i + 1))
            .chain(["consumer".to_owned()])
            .collect();
        let pids: Vec<u32> = (0..=WORKERS).map(|i| deployment.pid(i)).collect();
        let services = service_pids();
        let cpu_before: Vec<f64> = pids.iter().map(|&pid| cpu_seconds(pid)).collect();
        let services_before: Vec<f64> = services.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
        let output = dir.join(format!("taskq-{passes}-{tile}.png"));
        let output_dir = deployment.output_dir();
        let (amqp, redis) = (amqp_url(), redis_url());
        let env = [
            ("AMQP_URL", amqp.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("TASKQ_PREFIX", deployment.prefix.as_str()),
            ("TASKQ_OUTPUT_DIR", text(&output_dir)),
            ("RUST_LOG", "info"),
        ];
        let k = passes.to_string();
        let args = [
            "submit",
            "image-blur",
            "--input",
            text(input),
            "--output",
            text(&output),
            "--sigma",
            SIGMA,
            "--tile",
            tile,
            "--passes",
            &k,
            "--timeout",
            "300",
        ];
        let started_ms = now_ms();
        let mut producer = Timed::start(&binary("producer"), &args, &env);
        let first_last_pass_tile = watch_first_result(&deployment, &mut producer);
        let producer = producer.finish(LIMIT);
        let processes = names
            .into_iter()
            .zip(&pids)
            .zip(cpu_before)
            .map(|((name, &pid), before)| (name, cpu_seconds(pid) - before, peak_kb(pid)))
            .collect();
        let mut by_name: Vec<(String, f64)> = Vec::new();
        for ((name, pid), before) in services.iter().zip(services_before) {
            let after = cpu_seconds(*pid);
            // A process that ended during the run (a broker restarted by someone else) counts as 0.
            let used = if after >= before { after - before } else { 0.0 };
            match by_name.iter_mut().find(|(known, _)| known == name) {
                Some((_, total)) => *total += used,
                None => by_name.push((name.clone(), used)),
            }
        }
        let services = by_name;
        let summary = serde_json::from_str(&producer.stdout).unwrap_or_default();
        let published = producer
            .stderr_lines
            .iter()
            .find(|(_, line)| line.contains("image submitted"))
            .map(|(at, _)| *at);
        TaskqRun {
            producer,
            output,
            summary,
            published,
            first_last_pass_tile,
            started_ms,
            processes,
            services,
        }
    }

    /// The run's wall time, or how it ended otherwise.
    fn outcome(&self) -> String {
        let status = self.summary["status"].as_str().unwrap_or("no summary");
        if self.producer.success && status == "completed" {
            format!("{:.2} s", self.producer.wall.as_secs_f64())
        } else {
            format!(
                "{status} after {:.2} s ({})",
                self.producer.wall.as_secs_f64(),
                self.producer.stderr.lines().last().unwrap_or("")
            )
        }
    }

    /// When the producer finished publishing, each pass started and ended, and the last pass's first
    /// tile was recorded, from the producer's start.
    fn timeline(&self) -> String {
        let seconds =
            |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        let at = |ms: &serde_json::Value| {
            ms.as_u64().map_or("-".into(), |ms| {
                format!("{:.2}", ms.saturating_sub(self.started_ms) as f64 / 1e3)
            })
        };
        let passes = self.summary["stages"]
            .as_array()
            .map(|stages| {
                let spans: Vec<String> = stages
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        format!(
                            "pass {} {}..{}",
                            k + 1,
                            at(&s["started_ms"]),
                            at(&s["finished_ms"])
                        )
                    })
                    .collect();
                format!("; {} s (the last pass ends with the job)", spans.join(", "))
            })
            .unwrap_or_default();
        let total = self.producer.wall.as_secs_f64();
        let first = self.first_last_pass_tile;
        format!(
            "all tiles published at {}; last pass's first tile recorded at {} ({:.0}% of {total:.2} s){passes}",
            seconds(self.published),
            seconds(first),
            first.map_or(0.0, |d| 100.0 * d.as_secs_f64() / total),
        )
    }

    /// CPU seconds and peak memory of every process of the run, and the services' CPU.
    fn resources(&self) -> String {
        let mut parts = vec![format!("producer {}", self.producer.resources())];
        for (name, cpu, peak) in &self.processes {
            parts.push(format!(
                "{name} {cpu:.1} s CPU, {:.0} MB",
                *peak as f64 / 1024.0
            ));
        }
        for (name, cpu) in &self.services {
            parts.push(format!("{name} {cpu:.1} s CPU"));
        }
        parts.join("; ")
    }
}

/// Polls Redis while the producer runs; returns when (from its start) the first tile of the job's last
/// pass was recorded by the consumer.
fn watch_first_result(deployment: &Deployment, producer: &mut Timed) -> Option<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = runtime.block_on(deployment.store());
    let mut job = None;
    while producer.running() && producer.started.elapsed() < LIMIT {
        if job.is_none() {
            job = runtime
                .block_on(store.job_ids())
                .ok()
                .and_then(|ids| ids.first().copied());
        }
        if let Some(job) = job {
            let state = runtime.block_on(store.job_state(job)).ok().flatten();
            if state.is_some_and(|state| state.chunks_done > 0) {
                return Some(producer.started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
