//! The stock worker: the built-in kinds and the flags that configure them, for the `worker` binary and
//! for any binary that serves them beside kinds of its own (the project's `test-worker` does).

use clap::Args;

use crate::builder::{Worker, WorkerBuilder};
use crate::http::{HttpArgs, HttpClient};
use crate::settings::WorkerArgs;
use crate::tasks::{Download, ImageBlur, Square, SumSquares};

/// The stock worker's flags: every worker's ([`WorkerArgs`]) plus the `download` kind's ([`HttpArgs`]).
#[derive(Debug, Clone, Args)]
pub struct StockArgs {
    /// Every worker's flags.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// The `download` kind's flags.
    #[command(flatten)]
    pub http: HttpArgs,
}

impl StockArgs {
    /// A builder with the built-in kinds registered (`sum-squares`, `square`, `download`, `image-blur`), to which more
    /// can be added, and the flags to run it with; the error says which download flag is wrong.
    pub fn into_builder(self) -> Result<(WorkerBuilder, WorkerArgs), String> {
        let settings = self.http.into_settings()?;
        let http = HttpClient::new(settings).map_err(|error| error.to_string())?;
        let builder = Worker::builder()
            .cpu_task(SumSquares)
            .cpu_task(Square)
            .io_task(Download::new(http))
            .cpu_task(ImageBlur);
        Ok((builder, self.worker))
    }
}
