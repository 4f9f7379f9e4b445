//! `blur-whole IN.png OUT.png SIGMA [PASSES] [THREADS]`: the same Gaussian blur as `image-blur`, applied to
//! the whole image in one process (on THREADS threads, every core when 0 or absent). The reference
//! the tiled, distributed result is compared with, byte for byte, and timed against.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;
use std::time::Instant;

use taskq_image::{Blur, RowAssembler, TileReader, TileSize};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("usage: blur-whole IN.png OUT.png SIGMA [PASSES] [THREADS]");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [input, output, sigma, rest @ ..] = args else {
        return Err("expected at least IN.png OUT.png SIGMA".into());
    };
    let number = |at: usize, default: u32| -> Result<u32, String> {
        rest.get(at).map_or(Ok(default), |raw| {
            raw.parse()
                .map_err(|_| format!("'{raw}' is not a whole number"))
        })
    };
    let (passes, threads) = (number(0, 1)?, number(1, 0)?);
    let sigma: f32 = sigma
        .parse()
        .map_err(|_| format!("sigma '{sigma}' is not a number"))?;
    let blur = Blur::new(sigma).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let file = File::open(input).map_err(|e| format!("{input}: {e}"))?;
    // One tile as large as any image: the whole picture, read at once.
    let whole = TileSize {
        width: u32::MAX,
        height: u32::MAX,
    };
    let mut reader = TileReader::new(BufReader::new(file), whole, 0).map_err(|e| e.to_string())?;
    let (grid, format) = (reader.grid(), reader.format());
    let image = reader
        .next_tile()
        .map_err(|e| e.to_string())?
        .ok_or("the image has no pixels")?;
    let read = started.elapsed();
    let blurred = blur.blur_image_parallel(&image.region, passes, threads as usize);
    let computed = started.elapsed() - read;
    let out = File::create(output).map_err(|e| format!("{output}: {e}"))?;
    let mut writer =
        RowAssembler::new(BufWriter::new(out), grid, format).map_err(|e| e.to_string())?;
    writer.add(0, blurred).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    eprintln!(
        "read {:.3} s, blurred {:.3} s, total {:.3} s",
        read.as_secs_f64(),
        computed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
