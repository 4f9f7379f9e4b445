//! End-to-end tests: the real `producer`, `worker` and `consumer` binaries against the real RabbitMQ and
//! Redis, one isolated namespace per test (see the harness).

mod bad_input;
mod broadcast;
mod client;
mod consolidation;
mod control;
mod deadlines;
mod download_rules;
mod downloads;
mod image;
mod long_chunks;
mod manifests;
mod n_workers;
mod poison;
mod programs;
mod retries;
mod sentinel;
mod settle;
mod stages;
mod user_tasks;
