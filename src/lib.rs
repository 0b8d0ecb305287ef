//! converge: a declarative desired-state engine for AWS. Manifests are
//! loaded into a desired state ([`manifest`]), the cloud is observed
//! ([`cloud`]), the pure planner in `converge-core` diffs the two into a
//! plan, and the executor ([`apply`]) carries it out.

pub mod apply;
pub mod cloud;
pub mod commands;
pub mod lease;
pub mod manifest;
pub mod reconcile;
pub mod sys;

pub use converge_core as core;
