//! The reconcile loop's decisions, as pure functions: which instances are
//! unhealthy and get replaced ([`health`]), how an autoscaled fleet's
//! count moves on a metric reading ([`autoscale`]), which snapshots are
//! due or pruned ([`snapshots`]).
//!
//! Everything the loop learns by I/O (probe results, metric readings, the
//! time) and everything it remembers between passes (since when an
//! instance fails, when a fleet last scaled) is an input here; the loop
//! keeps the memory and does the I/O. The planner is then told the
//! outcome through [`PlanInput`](crate::plan::PlanInput)'s `scale`,
//! `replace`, `retire`, `snapshots` and `held`, so the plan a pass runs is
//! the plan the planner made: nothing is added or removed after.

pub mod autoscale;
pub mod health;
pub mod snapshots;
