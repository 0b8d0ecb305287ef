//! Checks of single values: names, CIDRs, ports, durations, zones, keys.
//! Each returns the normalised value or a lowercase message saying what
//! was expected and what was found.

use converge_core::desired::PortRange;
use converge_core::ids::{IdProblem, Kind, ResourceName, check_plain_name};
use converge_core::net::{CidrError, Ipv4Cidr};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The longest name of most kinds.
pub(crate) const MAX_NAME: usize = ResourceName::MAX_LEN;
/// The longest Balancer name (classic ELB's limit).
pub(crate) const MAX_BALANCER_NAME: usize = 32;

/// Checks a document's name against its kind's rules.
pub(crate) fn name(kind: Kind, name: &str) -> Result<(), String> {
    match kind {
        Kind::Bucket => bucket_name(name),
        Kind::Balancer => {
            plain_name(name, MAX_BALANCER_NAME)?;
            if name.ends_with('-') {
                return Err(format!(
                    "a balancer's name must not end with a hyphen, found {name:?}"
                ));
            }
            Ok(())
        }
        _ => plain_name(name, MAX_NAME),
    }
}

fn plain_name(name: &str, max: usize) -> Result<(), String> {
    let rule = format!(
        "expected lowercase letters, digits and hyphens, starting with a letter, at most {max} characters"
    );
    // The rule is the one `ResourceName` holds to; the words are the
    // loader's.
    check_plain_name(name, max).map_err(|problem| match problem {
        IdProblem::Empty => format!("{rule}, found an empty name"),
        IdProblem::TooLong { len, .. } => format!("{rule}, found {len} characters"),
        IdProblem::BadPrefix(_) => format!("{rule}, found {name:?}"),
        IdProblem::BadChar(c) => format!("{rule}, found {c:?} in {name:?}"),
    })
}

/// S3's bucket naming rules.
pub(crate) fn bucket_name(name: &str) -> Result<(), String> {
    let rule = "expected an S3 bucket name: 3-63 lowercase letters, digits, hyphens and dots, starting and ending with a letter or digit";
    let n = name.chars().count();
    if !(3..=63).contains(&n) {
        return Err(format!("{rule}, found {n} characters in {name:?}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!("{rule}, found {c:?} in {name:?}"));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !name.starts_with(alnum) || !name.ends_with(alnum) {
        return Err(format!("{rule}, found {name:?}"));
    }
    if name.contains("..") {
        return Err(format!(
            "an S3 bucket name must not contain two adjacent dots, found {name:?}"
        ));
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Err(format!(
            "an S3 bucket name must not look like an IP address, found {name:?}"
        ));
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(format!(
                "S3 reserves bucket names starting with {prefix:?}, found {name:?}"
            ));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(format!(
                "S3 reserves bucket names ending with {suffix:?}, found {name:?}"
            ));
        }
    }
    Ok(())
}

/// An IPv4 CIDR block with no host bits set; returns it normalised.
pub(crate) fn cidr(s: &str) -> Result<String, String> {
    let expected = "expected an IPv4 CIDR block like \"203.0.113.7/32\"";
    let Some((addr, len)) = s.split_once('/') else {
        if s.parse::<Ipv4Addr>().is_ok() {
            return Err(format!(
                "{expected}, found {s:?} (no prefix length: write \"{s}/32\" for one address)"
            ));
        }
        return Err(format!("{expected}, found {s:?}"));
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{expected}, found {s:?} (not an IPv4 address)"))?;
    let len: u8 = match len.parse() {
        Ok(n) if n <= 32 && !len.starts_with('+') => n,
        _ => {
            return Err(format!(
                "{expected}, found {s:?} (the prefix length must be 0 to 32)"
            ));
        }
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let bits = u32::from(addr);
    if bits & !mask != 0 {
        let network = Ipv4Addr::from(bits & mask);
        return Err(format!(
            "{s:?} has host bits set; the network is \"{network}/{len}\" (or write \"{addr}/32\" for one address)"
        ));
    }
    Ok(format!("{addr}/{len}"))
}

/// A VPC's or subnet's block: a network address and a prefix from `/16`
/// to `/28`, the sizes AWS allows for both
/// (<https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html>,
/// <https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html>).
pub(crate) fn network_block(s: &str) -> Result<Ipv4Cidr, String> {
    let block: Ipv4Cidr = s.parse().map_err(|e: CidrError| match e {
        CidrError::Shape(_) => format!("expected an IPv4 CIDR block like 10.0.0.0/16, found {s:?}"),
        CidrError::HostBits { network, .. } => {
            format!("expected the block's first address, found {s:?} (the block is {network})")
        }
    })?;
    if !(16..=28).contains(&block.prefix()) {
        return Err(format!(
            "expected a block from /16 to /28 (AWS's limits for VPCs and subnets), found /{}",
            block.prefix()
        ));
    }
    Ok(block)
}

/// The addresses of a subnet instances can use: AWS reserves five in
/// every subnet (the first four and the last).
pub(crate) fn usable_addresses(block: Ipv4Cidr) -> u64 {
    block.size().saturating_sub(5)
}

/// A VPC ID, `vpc-` and hex digits.
pub(crate) fn vpc_id(s: &str) -> Result<(), String> {
    hex_id(s, "vpc-", "a VPC ID like vpc-0abc12de")
}

/// A subnet ID, `subnet-` and hex digits.
pub(crate) fn subnet_id(s: &str) -> Result<(), String> {
    hex_id(s, "subnet-", "a subnet ID like subnet-0abc12de")
}

fn hex_id(s: &str, prefix: &str, what: &str) -> Result<(), String> {
    match s.strip_prefix(prefix) {
        Some(rest)
            if !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) =>
        {
            Ok(())
        }
        _ => Err(format!("expected {what}, found {s:?}")),
    }
}

/// A port number, 1–65535.
pub(crate) fn port(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!("expected a port from 1 to 65535, found {n}")),
    }
}

/// A port range such as `8100-8101`, first ≤ last.
pub(crate) fn port_range(s: &str) -> Result<PortRange, String> {
    let expected = "expected a port range like \"8100-8101\" with ports from 1 to 65535";
    let Some((a, b)) = s.split_once('-') else {
        return Err(format!("{expected}, found {s:?}"));
    };
    let parse = |t: &str| -> Option<u16> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse::<u16>().ok().filter(|p| *p >= 1)
    };
    match (parse(a.trim()), parse(b.trim())) {
        (Some(from), Some(to)) if from <= to => Ok(PortRange { from, to }),
        (Some(from), Some(to)) => Err(format!(
            "the range's first port must not exceed its last, found {from}-{to}"
        )),
        _ => Err(format!("{expected}, found {s:?}")),
    }
}

/// A duration in the one grammar of manifests and flags
/// ([`converge_core::duration`]): `30s`, `500ms`, `5m`, `1h30m`. At most
/// 366 days.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
    use converge_core::duration::DurationError;
    converge_core::duration::parse_within(s, Duration::ZERO, MAX).map_err(|e| match e {
        DurationError::OutOfBounds { found, .. } => {
            format!("a duration must be at most 366 days (8784h), found {found:?}")
        }
        e => e.to_string(),
    })
}

/// An AWS region name such as `us-east-1` or `us-gov-west-1`.
pub(crate) fn region(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected an AWS region like \"us-east-1\", found {s:?}"
        ))
    }
}

/// An availability zone of `region`: the region followed by a letter
/// (`us-east-1a`), or by `-` and a Local Zone suffix (`us-east-1-bos-1a`).
pub(crate) fn zone(s: &str, region: &str) -> Result<(), String> {
    let expected = format!("expected a zone of region {region}, like \"{region}a\"");
    let Some(suffix) = s.strip_prefix(region) else {
        return Err(format!("{expected}, found {s:?}"));
    };
    let letter = |c: u8| c.is_ascii_lowercase();
    let ok = match suffix.as_bytes() {
        [c] => letter(*c),
        [b'-', rest @ ..] => {
            rest.len() >= 2
                && rest
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && rest.last().copied().is_some_and(letter)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{expected}, found {s:?}"))
    }
}

/// A machine image ID: `ami-` and 8 or 17 hex digits.
pub(crate) fn image(s: &str) -> Result<(), String> {
    aws_id(s, "ami-", "a machine image ID like \"ami-147f977d\"")
}

/// A fleet's image: an image ID, or `ssm:` and an SSM parameter name.
pub(crate) fn image_source(s: &str) -> Result<(), String> {
    match s.strip_prefix("ssm:") {
        Some(name) => ssm_parameter(name),
        None => image(s).map_err(|m| format!("{m} (or ssm:NAME, an SSM parameter naming one)")),
    }
}

/// The longest SSM parameter name ("The maximum length for the fully
/// qualified parameter name is 1011 characters").
const MAX_PARAMETER: usize = 1011;
/// The deepest SSM parameter hierarchy ("limited to a maximum depth of
/// fifteen levels").
const MAX_PARAMETER_DEPTH: usize = 15;

/// An SSM parameter name, as SSM allows it
/// (<https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html>,
/// "Naming Constraints"): 1–1011 characters of `a-zA-Z0-9_.-` and `/`
/// between hierarchy levels, a hierarchy starting with `/`, at most 15
/// levels, no empty level. (Names under `/aws` and `/ssm` are AWS's own,
/// readable by everyone, such as the public AMI parameters, so they are
/// allowed here.)
pub(crate) fn ssm_parameter(name: &str) -> Result<(), String> {
    let rule = "expected an SSM parameter name: 1-1011 letters, digits, `_`, `.`, `-` and `/` between hierarchy levels, a hierarchy starting with `/`";
    let n = name.chars().count();
    if n == 0 || n > MAX_PARAMETER {
        return Err(format!("{rule}, found {n} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(format!("{rule}, found {c:?} in {name:?}"));
    }
    if name.contains('/') {
        if !name.starts_with('/') {
            return Err(format!(
                "{rule}, found {name:?}: a name in a hierarchy starts with `/`"
            ));
        }
        let levels: Vec<&str> = name[1..].split('/').collect();
        if levels.iter().any(|l| l.is_empty()) {
            return Err(format!("{rule}, found an empty level in {name:?}"));
        }
        if levels.len() > MAX_PARAMETER_DEPTH {
            return Err(format!(
                "{rule}, at most {MAX_PARAMETER_DEPTH} levels deep, found {} in {name:?}",
                levels.len()
            ));
        }
    }
    Ok(())
}

/// The characters IAM allows in a name (`[\w+=,.@-]`).
fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// An IAM instance profile: its name or its ARN. IAM's rules
/// (<https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateInstanceProfile.html>):
/// a name is 1–128 characters of `[\w+=,.@-]`; a path is `/` or
/// `/…/` of printable ASCII, at most 512 characters; the ARN is
/// `arn:PARTITION:iam::ACCOUNT:instance-profile/PATH/NAME` with a
/// 12-digit account.
pub(crate) fn instance_profile(s: &str) -> Result<(), String> {
    let rule = "expected an instance profile name (1-128 letters, digits and `_+=,.@-`) or ARN (arn:aws:iam::ACCOUNT:instance-profile/NAME)";
    let Some(rest) = s.strip_prefix("arn:") else {
        return iam_name(s).map_err(|found| format!("{rule}, found {found}"));
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, service, region, account, resource] = parts.as_slice() else {
        return Err(format!("{rule}, found {s:?}"));
    };
    if !matches!(*partition, "aws" | "aws-cn" | "aws-us-gov")
        || *service != "iam"
        || !region.is_empty()
    {
        return Err(format!(
            "{rule}, found {s:?}: an instance profile's ARN starts arn:aws:iam:: (IAM is global)"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{rule}, found account {account:?}: expected 12 digits"
        ));
    }
    let Some(path_name) = resource.strip_prefix("instance-profile/") else {
        return Err(format!(
            "{rule}, found {resource:?} after the account: expected instance-profile/NAME"
        ));
    };
    let (path, name) = match path_name.rsplit_once('/') {
        Some((p, n)) => (format!("/{p}/"), n),
        None => ("/".to_owned(), path_name),
    };
    if path.len() > 512 || !path.chars().all(|c| ('!'..='~').contains(&c)) {
        return Err(format!(
            "{rule}, found the path {path:?}: expected printable ASCII, at most 512 characters"
        ));
    }
    iam_name(name).map_err(|found| format!("{rule}, found {found} as the name"))
}

/// An IAM name; the error says what was found.
fn iam_name(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if !(1..=128).contains(&n) {
        return Err(format!("{n} characters"));
    }
    match s.chars().find(|c| !iam_name_char(*c)) {
        Some(c) => Err(format!("{c:?} in {s:?}")),
        None => Ok(()),
    }
}

/// A snapshot ID: `snap-` and 8 or 17 hex digits.
pub(crate) fn snapshot_id(s: &str) -> Result<(), String> {
    aws_id(s, "snap-", "a snapshot ID like \"snap-0123456789abcdef0\"")
}

fn aws_id(s: &str, prefix: &str, what: &str) -> Result<(), String> {
    let ok = s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(format!("expected {what}, found {s:?}"))
    }
}

/// An instance type such as `m1.small` or `c5n.18xlarge`.
pub(crate) fn instance_type(s: &str) -> Result<(), String> {
    let ok = s.split_once('.').is_some_and(|(family, size)| {
        family.starts_with(|c: char| c.is_ascii_lowercase())
            && family
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !size.is_empty()
            && size
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    });
    if ok && s.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "expected an instance type like \"m1.small\", found {s:?}"
        ))
    }
}

/// A device name for an EBS attachment: `/dev/sdf`–`/dev/sdp` or
/// `/dev/xvdf`–`/dev/xvdp`, the range AWS recommends for data volumes.
pub(crate) fn device(s: &str) -> Result<(), String> {
    let ok = s
        .strip_prefix("/dev/sd")
        .or_else(|| s.strip_prefix("/dev/xvd"))
        .is_some_and(|l| l.len() == 1 && (b'f'..=b'p').contains(&l.as_bytes()[0]));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a device name from /dev/sdf to /dev/sdp (or /dev/xvdf to /dev/xvdp), found {s:?}"
        ))
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    let ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected an http:// or https:// URL like \"http://127.0.0.1:9100/queue/length\", found {s:?}"
        ))
    }
}

/// A hostname for a CDN alias (a leading `*.` wildcard allowed); returns it
/// lowercased.
pub(crate) fn hostname(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let expected = "expected a domain name like \"cdn0.example.com\"";
    let body = lower.strip_prefix("*.").unwrap_or(&lower);
    let labels: Vec<&str> = body.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if lower.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) {
        Ok(lower)
    } else {
        Err(format!("{expected}, found {s:?}"))
    }
}

/// A classic ELB listener port: 25, 80, 443, 465, 587 or 1024–65535.
pub(crate) fn balancer_port(n: i64) -> Result<u16, String> {
    let p = port(n)?;
    if matches!(p, 25 | 80 | 443 | 465 | 587) || p >= 1024 {
        Ok(p)
    } else {
        Err(format!(
            "a classic load balancer listens on 25, 80, 443, 465, 587 or 1024-65535, found {n}"
        ))
    }
}

/// A classic ELB health-check target: `HTTP:80/`, `HTTPS:443/path`,
/// `TCP:5432`, `SSL:443`.
pub(crate) fn health_target(s: &str) -> Result<(), String> {
    let expected =
        "expected a target like \"HTTP:80/\", \"HTTPS:443/health\", \"TCP:5432\" or \"SSL:443\"";
    let Some((proto, rest)) = s.split_once(':') else {
        return Err(format!("{expected}, found {s:?}"));
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (port_text, path) = rest.split_at(digits);
    let port_ok = port_text
        .parse::<i64>()
        .ok()
        .is_some_and(|p| port(p).is_ok());
    if !port_ok {
        return Err(format!(
            "{expected}, found {s:?} (the port must be 1 to 65535)"
        ));
    }
    match proto {
        "HTTP" | "HTTPS" if path.starts_with('/') && path.len() <= 1024 => Ok(()),
        "HTTP" | "HTTPS" => Err(format!(
            "{expected}, found {s:?} (HTTP and HTTPS targets need a path starting with /)"
        )),
        "TCP" | "SSL" if path.is_empty() => Ok(()),
        "TCP" | "SSL" => Err(format!(
            "{expected}, found {s:?} (TCP and SSL targets take no path)"
        )),
        _ => Err(format!(
            "{expected}, found {s:?} (protocol HTTP, HTTPS, TCP or SSL)"
        )),
    }
}

/// A security group description: at most 255 of the characters AWS accepts.
pub(crate) fn group_description(s: &str) -> Result<(), String> {
    const EXTRA: &str = " ._-:/()#,@[]+=&;{}!$*";
    if s.is_empty() {
        return Err("expected a description, found an empty string".into());
    }
    if s.len() > 255 {
        return Err(format!(
            "a description is at most 255 characters, found {}",
            s.chars().count()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || EXTRA.contains(*c)))
    {
        return Err(format!(
            "a description may hold letters, digits, spaces and {EXTRA:?}, found {c:?}"
        ));
    }
    Ok(())
}

/// An environment variable name: letters, digits and `_`, not starting with
/// a digit.
pub(crate) fn env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// OpenSSH public key types EC2 imports.
const KEY_TYPES: [&str; 4] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
];
const KEY_TYPES_MORE: [&str; 1] = ["ecdsa-sha2-nistp521"];

/// OpenSSH public key text (`ssh-ed25519 AAAA… comment`); returns it on
/// one line. The key is never quoted in a message: it may be a private key
/// pasted by mistake.
pub(crate) fn public_key(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.contains("PRIVATE KEY") {
        return Err("this is a private key; give the public key (the .pub file) instead".into());
    }
    let types = || KEY_TYPES.iter().chain(KEY_TYPES_MORE.iter());
    let expected = format!(
        "expected an OpenSSH public key like \"ssh-ed25519 AAAA… comment\" (types: {})",
        types().copied().collect::<Vec<_>>().join(", ")
    );
    if t.lines().count() > 1 {
        return Err(format!("{expected}, found {} lines", t.lines().count()));
    }
    let mut words = t.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err(format!("{expected}, found text that is not one"));
    };
    if !types().any(|k| *k == kind) {
        return Err(format!(
            "{expected}, found a key of type {:?}",
            kind.chars().take(40).collect::<String>()
        ));
    }
    let bytes = base64_decode(blob)
        .ok_or_else(|| format!("{expected}, found key data that is not valid base64"))?;
    // The blob starts with the key type as a length-prefixed string.
    let inner = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..n.checked_add(4)?));
    if inner != Some(kind.as_bytes()) {
        return Err(format!(
            "{expected}, found key data that does not hold a {kind} key"
        ));
    }
    let comment: Vec<&str> = words.collect();
    let mut out = format!("{kind} {blob}");
    if !comment.is_empty() {
        out.push(' ');
        out.push_str(&comment.join(" "));
    }
    Ok(out)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    /// A syntactically valid ed25519 public key (32 zero bytes).
    pub(crate) const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA me@host";

    #[test]
    fn names() {
        assert!(name(Kind::Fleet, "app-1").is_ok());
        assert!(name(Kind::Fleet, "App").is_err());
        assert!(name(Kind::Fleet, "1app").is_err());
        assert!(name(Kind::Fleet, &"a".repeat(64)).is_err());
        assert!(name(Kind::Balancer, &"a".repeat(33)).is_err());
        assert!(name(Kind::Balancer, "web-").is_err());
        assert!(name(Kind::Bucket, "smallpayroll-assets").is_ok());
        assert!(name(Kind::Bucket, "my.assets.1").is_ok());
        for bad in [
            "ab",
            "a..b",
            "192.168.1.1",
            "-abc",
            "abc-",
            "Abc",
            "xn--abc",
            "a_b",
        ] {
            assert!(name(Kind::Bucket, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("203.0.113.7/32").unwrap(), "203.0.113.7/32");
        assert_eq!(cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        let e = cidr("10.0.0.1/8").unwrap_err();
        assert!(e.contains("\"10.0.0.0/8\""), "{e}");
        assert!(cidr("10.0.0.1").unwrap_err().contains("/32"));
        for bad in [
            "10.0.0.0/33",
            "300.0.0.0/8",
            "10.0.0/8",
            "x/1",
            "10.0.0.0/+8",
            "010.0.0.0/8",
        ] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port(80).unwrap(), 80);
        assert!(port(0).is_err() && port(65536).is_err() && port(-1).is_err());
        assert_eq!(
            port_range("8100-8101").unwrap(),
            PortRange {
                from: 8100,
                to: 8101
            }
        );
        for bad in ["8101-8100", "0-5", "1-70000", "80", "a-b", "-", "1--2"] {
            assert!(port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in [
            "",
            "30",
            "1m1h",
            "-5m",
            "5mm",
            "99999999999999999999h",
            "8785h",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_and_zones() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "eu-central-1",
        ] {
            assert!(region(ok).is_ok(), "{ok}");
        }
        for bad in ["us-east", "useast1", "US-EAST-1", "us-east-1a"] {
            assert!(region(bad).is_err(), "{bad}");
        }
        assert!(zone("us-east-1a", "us-east-1").is_ok());
        assert!(zone("us-east-1-bos-1a", "us-east-1").is_ok());
        assert!(zone("us-west-2a", "us-east-1").is_err());
        assert!(zone("us-east-1", "us-east-1").is_err());
        assert!(zone("us-east-1ab", "us-east-1").is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(public_key(&format!("  {KEY}\n")).unwrap(), KEY);
        assert!(public_key("ssh-ed25519 AAAA").is_err());
        assert!(public_key("ssh-dss AAAAB3NzaC1kc3MAAA").is_err());
        assert!(
            public_key(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
            .is_err()
        );
        let e = public_key("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n").unwrap_err();
        assert!(e.contains("private key") && !e.contains("secret"));
    }

    #[test]
    fn health_targets() {
        for ok in ["HTTP:80/", "HTTPS:443/path", "TCP:5432", "SSL:443"] {
            assert!(health_target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "HTTP:80",
            "TCP:5432/",
            "UDP:53",
            "HTTP:0/",
            "HTTP:x/",
            "http:80/",
        ] {
            assert!(health_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            hostname("CDN0.SmallPayroll.example").unwrap(),
            "cdn0.smallpayroll.example"
        );
        assert!(hostname("*.example.com").is_ok());
        for bad in ["example", "-a.example", "a..b", "a b.com"] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }
}
