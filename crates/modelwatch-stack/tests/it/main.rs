//! Integration tests of modelwatch-stack: one binary, one module per area.

mod compose;
mod fixture;
mod kubernetes;
mod local_stack;
mod remote_write;
mod servers;
mod support;
mod thanos;
mod victoriametrics;
