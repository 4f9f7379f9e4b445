//! The contract the `producer`, `worker` and `consumer` binaries share.
//!
//! Data flow of one job:
//!
//! ```text
//! producer --(TaskMessage, tasks queue)--> worker --(ResultMessage, results queue)--> consumer
//!     |                                      |  ^                                        |
//!     |                                      +--+ a later stage's chunk (stages)         |
//!     +------------------ job record and progress in Redis (store) ---------------------+
//! ```
//!
//! Modules:
//! - [`config`]: connection arguments every binary flattens into its CLI, and URL redaction.
//! - [`job`]: validated newtypes (job id, chunk size) and the job record kept in Redis.
//! - [`task`]: the task API (a kind is a type: name, lane, input, output, options); [`aggregate`]: what a
//!   kind's outputs fold into; [`payload`]: items and outputs as JSON inside a message.
//! - [`envelope`]: the versioned MessagePack messages and their decoding errors.
//! - [`topology`]: every queue and Redis key name, and their declaration.
//! - [`broker`]: connecting to RabbitMQ and publishing with confirms; [`dead_letter`]: moving a message
//!   that can never be processed to the dead-letter queue.
//! - [`store`]: job state in Redis (one server, or a master found through Sentinel and followed through
//!   failovers, with the writes a failover must not lose confirmed by replicas).
//! - [`stages`]: multi-stage jobs (a chain of kinds that streams, with map, flat-map, reduce and
//!   neighbours edges, and the TOML job spec); [`stage_store`]: their per-stage state in Redis.
//! - [`image_job`]: an image job's geometry, and its finished PNG handed from consumer to producer.
//! - [`consume`]: the consuming loop with graceful drain; [`connection_watch`] ends it when the
//!   connection fails; [`settle`]: acks in batches; [`batching`]: collecting a batch from a channel.
//! - [`registry`]: live workers in Redis, with heartbeats; [`broadcast`]: broadcast jobs' members and
//!   who owns which chunk; [`control`]: the control plane's commands and replies; [`cancel`]: cancelling
//!   a job in Redis.
//! - [`connect`]: start-up retry with backoff for services that are not up yet; [`deadline`]: the
//!   bound on every step of reaching them.
//! - [`telemetry`], [`shutdown`], [`service`]: logging, the stop signal, and how a long-running binary
//!   starts and ends.

pub mod aggregate;
pub mod batching;
pub mod broadcast;
pub mod broker;
pub mod cancel;
pub mod config;
pub mod connect;
pub mod connection_watch;
pub mod consume;
pub mod control;
pub mod dead_letter;
pub mod deadline;
pub mod envelope;
pub mod image_job;
pub mod job;
pub mod payload;
pub mod registry;
pub mod service;
pub mod settle;
pub mod shutdown;
pub mod stage_store;
pub mod stages;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod topology;
