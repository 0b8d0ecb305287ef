//! The executor: walks a plan's step graph against a cloud.
