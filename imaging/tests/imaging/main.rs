//! The crate's tests, one binary: a module per concern, helpers in `harness`.

mod errors;
mod exact;
mod filter;
mod grid;
mod harness;
mod memory;
mod speed;
mod wire;
