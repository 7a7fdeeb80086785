//! Integration tests of modelwatch-stack: one binary, one module per area.

mod servers;
mod support;
