//! A worker of your own: register your tasks (and any built-in ones), then run it like the stock
//! `worker`, with the same flags, environment and guarantees.
//!
//! ```ignore
//! use taskq::{Worker, Square};
//!
//! fn main() -> std::process::ExitCode {
//!     Worker::builder()
//!         .cpu_task(WordCount)          // yours: one file in your crate
//!         .cpu_task(Square)             // a built-in one
//!         .io_task(Fetch::new(client))  // an I/O-bound one, with its own client
//!         .main()                       // or `.run().await` inside your own runtime
//! }
//! ```

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::sync::Arc;
use taskq_common::registry::KindInfo;
use taskq_common::task::{CpuTask, IoTask};
use tokio_util::sync::CancellationToken;

use crate::exec;
use crate::kinds::{KindError, Kinds};
use crate::settings::{Settings, WorkerArgs};
use crate::WorkerError;

/// A worker process serving the task kinds registered on its [`WorkerBuilder`].
pub struct Worker;

impl Worker {
    /// Starts registering the kinds a worker serves.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }
}

/// The kinds a worker will serve; [`WorkerBuilder::run`] starts it.
#[derive(Default)]
pub struct WorkerBuilder {
    kinds: Kinds,
    refused: Vec<KindError>,
}

/// The command line of a worker built with [`WorkerBuilder::run`].
#[derive(Debug, clap::Parser)]
#[command(version)]
struct WorkerCli {
    #[command(flatten)]
    worker: WorkerArgs,
}

impl WorkerBuilder {
    /// Serves a CPU-bound task: its items run on the worker's thread pool.
    pub fn cpu_task<T: CpuTask>(mut self, task: T) -> Self {
        if let Err(error) = self.kinds.add_cpu(task) {
            self.refused.push(error);
        }
        self
    }

    /// Serves an I/O-bound task: its items run as async tasks, up to `--io-concurrency` at once.
    pub fn io_task<T: IoTask>(mut self, task: T) -> Self {
        if let Err(error) = self.kinds.add_io(task) {
            self.refused.push(error);
        }
        self
    }

    /// How this worker declares its registered kinds to producers and consumers (name, lane, chunk
    /// size, aggregate), as `producer kinds` shows them once it runs.
    pub fn declarations(&self) -> Vec<KindInfo> {
        self.kinds.iter().map(|kind| kind.info.clone()).collect()
    }

    /// Parses the worker's flags from the command line and environment (see `--help`), then runs until
    /// SIGINT or SIGTERM. Returns the process's exit code: 0 after a requested stop, 2 for invalid flags
    /// or kinds, 1 for a fatal error.
    pub async fn run(self) -> ExitCode {
        let name = std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "worker".into());
        let command = WorkerCli::command().name(name);
        let matches = command.get_matches();
        let cli = WorkerCli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        self.run_with(cli.worker).await
    }

    /// [`WorkerBuilder::run`] on a runtime of its own, for a plain `fn main`: no async runtime needed in
    /// the user's crate.
    pub fn main(self) -> ExitCode {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(self.run()),
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                ExitCode::FAILURE
            }
        }
    }

    /// Like [`WorkerBuilder::run`], with flags a binary parsed itself (for one that adds flags of its own
    /// beside [`WorkerArgs`]).
    pub async fn run_with(self, args: WorkerArgs) -> ExitCode {
        let log = args.log.clone();
        let prepared = args.into_settings().and_then(|settings| {
            let kinds = self.into_kinds(&settings)?;
            // Bound before anything runs: a taken address is a usage error (exit 2), not a worker
            // that runs unobserved.
            let metrics = settings.metrics.bind().map_err(|error| error.to_string())?;
            Ok((kinds, settings, metrics))
        });
        taskq_common::service::main(&log, prepared, |(kinds, settings, metrics), shutdown| {
            crate::serve(kinds, settings, metrics, shutdown)
        })
        .await
    }

    /// Runs with validated settings until `shutdown` fires: for embedding a worker in a program.
    pub async fn serve(
        self,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<(), WorkerError> {
        let kinds = self.into_kinds(&settings).map_err(WorkerError::Kinds)?;
        let metrics = settings.metrics.bind()?;
        crate::serve(kinds, settings, metrics, shutdown).await
    }

    /// The registered kinds plus the program kinds of `--exec` and `--exec-lines`; the error says
    /// which kind is wrong, or that there is none.
    fn into_kinds(self, settings: &Settings) -> Result<Arc<Kinds>, String> {
        let Self { mut kinds, refused } = self;
        if let Some(error) = refused.first() {
            return Err(error.to_string());
        }
        let programs = exec::ExecSettings {
            once: settings.exec.clone(),
            lines: settings.exec_lines.clone(),
            time_limit: settings.exec_timeout,
            processes: settings.cpu_threads,
        };
        exec::register(&mut kinds, &programs).map_err(|error| error.to_string())?;
        if kinds.is_empty() {
            return Err(
                "this worker serves no task kind: register tasks on Worker::builder(), or \
                        pass --exec NAME=COMMAND"
                    .into(),
            );
        }
        Ok(Arc::new(kinds))
    }
}
