//! EC2: VPCs and their subnets, gateways and route tables, key pairs, security groups, instances, and EBS volumes with their
//! snapshots, one file each. Every file's operations and lookups are
//! re-exported here, so `act` calls them all as `ec2::name`, as the AWS
//! backend's `ec2.rs` does.

mod groups;
mod instance_options;
mod instances;
mod key_pairs;
mod volumes;
mod vpc;

pub(crate) use groups::*;
pub(crate) use instance_options::*;
pub(crate) use instances::*;
pub(crate) use key_pairs::*;
pub(crate) use volumes::*;
pub(crate) use vpc::*;
