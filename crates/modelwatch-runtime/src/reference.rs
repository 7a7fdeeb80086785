//! placeholder
#![allow(missing_docs)]
pub const REFERENCE_FORMAT_VERSION: u32 = 1;
#[derive(Debug)]
pub struct Reference;
#[derive(Debug)]
pub struct Distribution;
