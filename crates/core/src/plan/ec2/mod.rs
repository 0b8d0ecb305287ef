//! Planning the EC2 kinds: key pairs, security groups and EBS volumes,
//! one file each.

mod groups;
mod key_pairs;
mod volumes;

pub use groups::rule_ports;
pub(crate) use volumes::VolumeState;
pub use volumes::snapshot_tags;
