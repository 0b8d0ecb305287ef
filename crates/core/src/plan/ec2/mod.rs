//! Planning the EC2 kinds: key pairs, security groups, EBS volumes and
//! fleets of instances, one file each.

pub(super) mod fleet;
mod groups;
mod key_pairs;
mod snapshots;
mod volumes;

pub use groups::rule_ports;
pub(crate) use volumes::VolumeState;
pub use volumes::snapshot_tags;
