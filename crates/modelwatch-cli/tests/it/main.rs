//! Integration tests of the `modelwatch` binary, one module per area. The two
//! heavy drills (`tests/scenarios.rs`, `tests/fleet.rs`) are test binaries of their own,
//! so cargo runs them one after the other instead of sharing two cores.

mod cancellation;
mod features;
mod feedback;
mod inference_panic;
mod metrics_security;
mod oip;
mod repository;
mod serve;
mod status;
mod support;
mod wide_mlp;
