//! Integration tests of the serving pipeline, one module per area.

mod router;
mod support;
