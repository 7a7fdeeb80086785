//! Integration tests of modelwatch-stack: one binary, one module per area.

mod kubernetes;
mod servers;
mod support;
