//! Shared helpers of the end-to-end tests.

pub mod chaos;
pub mod example;
pub mod metric;
#[macro_use]
pub mod moto;
