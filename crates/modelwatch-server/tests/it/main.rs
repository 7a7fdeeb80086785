//! Integration tests of the serving pipeline, one module per area.

mod flood;
mod router;
mod support;
