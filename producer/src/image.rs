//! `producer submit image-blur`: a PNG blurred in tiles by the workers, written by the consumer, and
//! fetched to `--output`.
//!
//! The producer checks the file's structure first (a damaged or truncated PNG is refused before anything
//! is sent), then decodes it row by row and publishes each tile, with a halo of its neighbours' pixels
//! as wide as the filter's radius, as soon as its rows are read: workers start before the image is
//! read. With `--passes K`, each pass is a stage, and a tile of pass k+1 starts as soon as it and the
//! tiles around it are done in pass k (the `neighbours` edge).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use taskq_common::broker::Outgoing;
use taskq_common::config::ConnectionArgs;
use taskq_common::envelope::TaskMessage;
use taskq_common::image_job::ImageOutput;
use taskq_common::job::{now_ms, JobId, JobSpec, JobStatus};
use taskq_common::payload::TaskPayload;
use taskq_common::stages::{Edge, Neighbourhood, Plan, Stage};
use taskq_common::topology::Topology;
use taskq_image::{check_png, Blur, TileGrid, TileInput, TileReader};
use tokio_util::sync::CancellationToken;

use crate::cli::ImageBlurArgs;
use crate::client::Streamed;
use crate::follow::{self, Progress};
use crate::ProducerError;

/// The kind that blurs a tile.
pub const KIND: &str = "image-blur";

/// The largest message a tile may make: well below RabbitMQ 4's default limit of 16 MiB.
pub const MAX_MESSAGE_BYTES: u64 = 12 << 20;

/// What was checked before connecting: the file, the filter and the tiles.
struct Checked {
    blur: Blur,
    tiles: TileReader<BufReader<File>>,
    plan: Option<Plan>,
}

/// Blurs `args.input` into `args.output`; prints the job's summary.
pub async fn submit(
    connection: &ConnectionArgs,
    args: &ImageBlurArgs,
    shutdown: &CancellationToken,
) -> Result<(), ProducerError> {
    let Checked { blur, tiles, plan } = check(args).map_err(ProducerError::Input)?;
    let (grid, format) = (tiles.grid(), tiles.format());
    let client = crate::connect(connection).await?;
    let topology = client.store().topology().clone();
    let spec = JobSpec {
        id: JobId::new(),
        kind: KIND.to_owned(),
        total_chunks: grid.len() as u32,
        total_items: grid.len() as u64,
        submitted_at_ms: now_ms(),
    };
    let mut fields = vec![ImageOutput { grid, format }.field()];
    if let Some(plan) = &plan {
        fields.push(("stages", plan.to_json()));
        fields.push(("source_chunks", grid.len().to_string()));
    }
    let job = Streamed {
        spec,
        fields,
        kinds: vec![KIND.to_owned()],
        allow_unserved: args.allow_unserved,
    };
    let id = job.spec.id;
    let (sender, chunks) = tokio::sync::mpsc::channel(2);
    let sigma = blur.sigma();
    let cutting = tokio::task::spawn_blocking(move || {
        for tile in tiles {
            let message = tile
                .map_err(|error| error.to_string())
                .map(|tile| tile_message(&topology, id, grid, sigma, tile));
            if sender.blocking_send(message).is_err() {
                break;
            }
        }
    });
    let submitted = client.submit_streamed(job, chunks, shutdown).await;
    cutting.abort();
    submitted?;
    tracing::info!(job = %id, tiles = grid.len(), "image submitted; waiting for it");
    let timeout = args.timeout.map(Duration::from_secs);
    let state = follow::wait(client.store(), id, timeout, Progress::Bar, shutdown).await?;
    let result = match state.status {
        JobStatus::Completed => fetch(&client, id, &args.output).await,
        _ => Ok(()),
    };
    crate::print_json(&follow::state_json(&state));
    client.close().await;
    result?;
    crate::job_outcome(&state)
}

/// Checks everything that can be checked before connecting; the error says what to change.
fn check(args: &ImageBlurArgs) -> Result<Checked, String> {
    let blur = Blur::new(args.sigma).map_err(|e| e.to_string())?;
    let open = || {
        File::open(&args.input)
            .map(BufReader::new)
            .map_err(|e| format!("cannot open the image {}: {e}", args.input.display()))
    };
    check_png(open()?).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let tiles = TileReader::new(open()?, args.tile, blur.radius())
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let grid = tiles.grid();
    let pixel = tiles.format().pixel_bytes() as u64;
    let radius = blur.radius();
    let (width, height) = (u64::from(grid.tile_width()), u64::from(grid.tile_height()));
    let hood = neighbourhood(grid, radius);
    let carried = if args.passes > 1 {
        let tiles = u64::from((2 * hood.reach_x + 1) * (2 * hood.reach_y + 1));
        tiles * width * height * pixel
    } else {
        (width + 2 * u64::from(radius)) * (height + 2 * u64::from(radius)) * pixel
    };
    // Pixels travel as base64 inside JSON: 4 bytes for every 3.
    let message = carried * 4 / 3;
    if message > MAX_MESSAGE_BYTES {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        return Err(format!(
            "tiles of {}x{} make messages of {:.1} MiB with sigma {} and {} pass(es), above the {:.0} MiB a message may carry: use --tile {} or smaller",
            grid.tile_width(),
            grid.tile_height(),
            mib(message),
            args.sigma,
            args.passes,
            mib(MAX_MESSAGE_BYTES),
            largest_square_tile(pixel, radius, args.passes)
        ));
    }
    let plan = (args.passes > 1).then(|| passes_plan(args.passes, hood));
    Ok(Checked { blur, tiles, plan })
}

/// The largest square tile whose messages fit [`MAX_MESSAGE_BYTES`]: one pass carries the tile and its
/// halo, later passes the 3x3 tiles around it (for tiles at least as wide as the radius).
fn largest_square_tile(pixel: u64, radius: u32, passes: u32) -> u64 {
    let pixels = MAX_MESSAGE_BYTES * 3 / 4 / pixel;
    let side = (pixels as f64).sqrt() as u64;
    if passes > 1 {
        side / 3
    } else {
        side.saturating_sub(2 * u64::from(radius))
    }
    .max(1)
}

/// Which tiles a tile's halo reaches: as many columns and rows as the radius spans tiles.
fn neighbourhood(grid: TileGrid, radius: u32) -> Neighbourhood {
    Neighbourhood {
        cols: grid.cols(),
        reach_x: radius.div_ceil(grid.tile_width()),
        reach_y: radius.div_ceil(grid.tile_height()),
    }
}

/// K passes: each a stage of `image-blur`, joined to the previous pass by the `neighbours` edge.
fn passes_plan(passes: u32, hood: Neighbourhood) -> Plan {
    let stages = (0..passes)
        .map(|pass| Stage {
            kind: KIND.to_owned(),
            edge: (pass > 0).then_some(Edge::Neighbours),
            chunk_size: None,
            cap: None,
            neighbourhood: (pass > 0).then_some(hood),
        })
        .collect();
    Plan::new(stages).expect("a chain of image-blur passes is a valid plan")
}

/// The message of one tile: its item is the `image-blur` input with the tile's halo.
fn tile_message(
    topology: &Topology,
    job: JobId,
    grid: TileGrid,
    sigma: f32,
    tile: TileInput,
) -> Outgoing {
    let item = serde_json::json!({
        "grid": grid,
        "sigma": sigma,
        "index": tile.index,
        "region": tile.region,
    });
    let payload = TaskPayload::of(tile.index as u64, &[item]).expect("a tile encodes as JSON");
    let task = TaskMessage::new(job, (0, 0, tile.index as u32), KIND, &payload);
    topology.task_outgoing(&task)
}

/// Writes the job's PNG, as the consumer handed it over, to `output` (whole or not at all).
async fn fetch(client: &crate::Client, job: JobId, output: &Path) -> Result<(), ProducerError> {
    let temporary = output.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut file =
        std::io::BufWriter::new(File::create(&temporary).map_err(|e| {
            ProducerError::Input(format!("cannot write {}: {e}", temporary.display()))
        })?);
    let fetched = client.store().fetch_png(job, &mut file).await;
    let written = fetched.and_then(|length| {
        use std::io::Write;
        file.flush()
            .map_err(|e| taskq_common::store::StoreError::Corrupt {
                job,
                detail: format!("writing {}: {e}", temporary.display()),
            })?;
        Ok(length)
    });
    match written {
        Ok(Some(bytes)) => {
            std::fs::rename(&temporary, output).map_err(|e| {
                ProducerError::Input(format!("cannot write {}: {e}", output.display()))
            })?;
            tracing::info!(output = %output.display(), bytes, "blurred image written");
            Ok(())
        }
        Ok(None) => {
            let _ = std::fs::remove_file(&temporary);
            Err(ProducerError::Input(format!(
                "job {job} completed but its PNG is no longer in Redis (kept an hour): the consumer's copy is in its output directory"
            )))
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error.into())
        }
    }
}
