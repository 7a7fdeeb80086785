//! Integration tests of the serving pipeline, one module per area.

mod flood;
mod oip;
mod router;
mod support;
