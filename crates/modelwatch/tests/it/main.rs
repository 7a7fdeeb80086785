//! Integration tests of the modelwatch library, one module per area.

mod docs;
mod golden;
mod properties;
mod support;
