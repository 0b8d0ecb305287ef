//! converge's pure core: the desired and observed models, the planner that
//! diffs them into a plan, and the renderers that show a plan to people and
//! machines. Nothing here does I/O: no clock, no filesystem, no network. The
//! time, the observed state and any metric decisions are inputs, so the same
//! inputs always give the same plan, byte for byte.

pub mod acm;
pub mod check;
pub mod controller;
pub mod cron;
pub mod desired;
pub mod duration;
pub mod ebs;
pub mod elb;
pub mod ids;
pub mod net;
pub mod observed;
pub mod plan;
pub mod render;
pub mod route53;
pub mod s3;
pub mod spec_hash;
pub mod tz;

pub use check::{Problem, Refused, check, checked};
pub use desired::Desired;
pub use observed::Observed;
pub use plan::{Plan, PlanInput, plan};
