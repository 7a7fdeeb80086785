//! `modelwatch demo` and the lab it runs in.
//!
//! A [`Lab`] is everything one incident drill needs on one machine: a
//! `modelwatch serve` process with fault injection, and, when Debian's `prometheus`
//! and `prometheus-alertmanager` are installed, both of them in a temporary directory
//! with the generated mixin at a compressed time scale, scraping the server every
//! second. The demo plays a timeline of incidents against a lab; the scenario tests
//! play one scenario per lab. Everything a lab starts is stopped by its own process
//! id when it is dropped, and its directory removed. A [`drill`] plays one
//! scenario against one lab and reports every alert it raised: the scenario tests,
//! the false-alarm drill and `modelwatch drill` are drills.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod drill;
pub mod lab;
pub mod page;

pub use lab::{Lab, LabOptions};
