//! Integration tests of the `modelwatch` binary, one module per area.

mod serve;
mod support;
