//! The modelwatch model runtime.
//!
//! - [`ModelCard`]: what the training pipeline says about a model (`models/<name>.card.json`).
//! - [`Model`] and [`load_model`] / [`load_model_for_card`]: ONNX models behind one trait.
//!   Tree ensembles run in our own evaluator (stock tract is slow on trees and rejects
//!   boosted binary classifiers); every other graph runs in tract.
//! - [`Reference`]: the binned reference distributions of the score and of each feature
//!   (`models/<name>.reference.json`), which drift metrics compare live traffic against.
//! - [`cli`]: the `modelwatch reference` command that builds a reference file.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod card;
pub mod cli;
pub mod error;
pub mod model;
mod onnx;
pub mod reference;
pub mod skeleton;
mod tract_backend;
mod tree;

pub use card::{CARD_FORMAT_VERSION, CardMetrics, FeatureSpec, ModelCard};
pub use error::RuntimeError;
pub use model::{
    Backend, LoadOptions, Model, check_shape, load_card_and_model, load_model, load_model_for_card,
    load_model_with,
};
pub use reference::{Distribution, REFERENCE_FORMAT_VERSION, Reference};
pub use tree::EnsembleStats;
