//! Integration tests of the `modelwatch` binary, one module per area.

mod scenarios;
mod serve;
mod support;
