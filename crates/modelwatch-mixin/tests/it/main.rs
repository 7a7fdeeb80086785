//! Integration tests of the mixin generator, one module per area.

mod cli;
mod dashboard;
mod generated;
mod live;
mod per_model;
mod queries;
mod support;
