//! Planning the EC2 kinds: the network (VPC and subnets), key pairs, security groups, EBS volumes and
//! fleets of instances, one file each.

pub(super) mod fleet;
mod groups;
mod key_pairs;
mod network;
mod snapshots;
mod volumes;

pub use groups::rule_ports;
pub(crate) use network::PlannedSubnet;
pub(crate) use volumes::VolumeState;
pub use volumes::snapshot_tags;
