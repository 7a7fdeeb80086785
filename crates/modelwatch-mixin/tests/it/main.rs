//! Integration tests of the mixin generator, one module per area.

mod cli;
mod dashboard;
mod generated;
mod live;
mod queries;
mod support;
