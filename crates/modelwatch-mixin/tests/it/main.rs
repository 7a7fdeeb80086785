//! Integration tests of the mixin generator, one module per area.

mod generated;
mod support;
