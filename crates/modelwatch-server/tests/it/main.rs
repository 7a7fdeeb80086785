//! Integration tests of the serving pipeline, one module per area.

mod feedback;
mod flood;
mod fuzz_corpus;
mod observations;
mod oip;
mod openapi;
mod router;
mod support;
