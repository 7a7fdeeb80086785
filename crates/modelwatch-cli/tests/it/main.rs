//! Integration tests of the `modelwatch` binary, one module per area.

mod fleet;
mod scenarios;
mod serve;
mod support;
