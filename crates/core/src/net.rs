//! IPv4 CIDR blocks, as VPCs and subnets use them: parsed strictly (the
//! address is the block's first), compared for containment and overlap.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 CIDR block whose address is its network address
/// (`10.0.1.0/24`, never `10.0.1.7/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why text is not a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n`.
    #[error("{0:?} is not an IPv4 CIDR block (a.b.c.d/n)")]
    Shape(String),
    /// Host bits are set.
    #[error("{text:?} has host bits set: the block starts at {network}")]
    HostBits {
        /// The text given.
        text: String,
        /// The block's network address.
        network: Ipv4Cidr,
    },
}

/// Whether `a` is one of the five addresses AWS keeps of every subnet
/// `block`: the network address, the next three (the VPC router, DNS,
/// future use) and the last
/// (<https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html>).
pub fn reserved_address(block: Ipv4Cidr, a: Ipv4Addr) -> bool {
    let first = u64::from(u32::from(block.addr()));
    let n = u64::from(u32::from(a));
    n < first + 4 || n == first + block.size() - 1
}

impl Ipv4Cidr {
    /// A block from its network address and prefix length; `None` when the
    /// prefix is over 32 or host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32 && u32::from(addr) & !mask(prefix) == 0).then_some(Self { addr, prefix })
    }

    /// The network address.
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// How many addresses the block holds.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`th address of the block, if it holds that many.
    pub fn nth(self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr) + n as u32))
    }

    /// Whether `other` lies wholly inside this block.
    pub fn contains(self, other: Ipv4Cidr) -> bool {
        other.prefix >= self.prefix
            && u32::from(other.addr) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether an address lies inside this block.
    pub fn contains_addr(self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(self, other: Ipv4Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let shape = || CidrError::Shape(s.to_owned());
        let (a, p) = s.split_once('/').ok_or_else(shape)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| shape())?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 2 {
            return Err(shape());
        }
        let prefix: u8 = p.parse().map_err(|_| shape())?;
        if prefix > 32 {
            return Err(shape());
        }
        Ipv4Cidr::new(addr, prefix).ok_or_else(|| CidrError::HostBits {
            text: s.to_owned(),
            network: Ipv4Cidr {
                addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
                prefix,
            },
        })
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Self, CidrError> {
        s.parse()
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_network_blocks_only() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert!(matches!(
            "10.0.1.7/24".parse::<Ipv4Cidr>(),
            Err(CidrError::HostBits { .. })
        ));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/+8", "x/8"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_and_overlap() {
        let vpc = c("10.0.0.0/16");
        assert!(vpc.contains(c("10.0.1.0/24")));
        assert!(!vpc.contains(c("10.1.0.0/24")));
        assert!(!c("10.0.1.0/24").contains(vpc));
        assert!(c("10.0.0.0/23").overlaps(c("10.0.1.0/24")));
        assert!(!c("10.0.0.0/24").overlaps(c("10.0.1.0/24")));
        assert_eq!(c("10.0.1.0/28").size(), 16);
        assert_eq!(c("10.0.1.0/28").nth(4), Some("10.0.1.4".parse().unwrap()));
        assert!(vpc.contains_addr("10.0.200.1".parse().unwrap()));
    }
}
