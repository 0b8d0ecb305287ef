//! Time zones, resolved once when the manifests are loaded, from the IANA
//! time zone database bundled into the binary (jiff's
//! `tzdb-bundle-always`), never from the host's `/usr/share/zoneinfo`.
//! The planner reads schedules in the [`Tz`] the desired state holds, so
//! the same manifests, observation and moment plan the same on every host,
//! whatever its tz database says or lacks.

use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An IANA time zone (`America/Toronto`, `UTC`) with its rules, taken
/// from the bundled database.
#[derive(Clone)]
pub struct Tz {
    name: String,
    zone: TimeZone,
}

/// A name the bundled time zone database does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}")]
pub struct UnknownTimeZone(pub String);

impl Tz {
    /// The zone named `name` in the bundled database (case-insensitive, as
    /// the database is; the name is kept as written).
    pub fn bundled(name: &str) -> Result<Tz, UnknownTimeZone> {
        TimeZoneDatabase::bundled()
            .get(name)
            .map(|zone| Tz {
                name: name.to_owned(),
                zone,
            })
            .map_err(|_| UnknownTimeZone(name.to_owned()))
    }

    /// UTC.
    pub fn utc() -> Tz {
        Tz {
            name: "UTC".to_owned(),
            zone: TimeZone::UTC,
        }
    }

    /// The name as the manifest wrote it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rules, for reading times in it.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

impl PartialEq for Tz {
    fn eq(&self, other: &Self) -> bool {
        // One bundled database: the same name is the same rules.
        self.name == other.name
    }
}

impl Eq for Tz {}

impl fmt::Debug for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tz({:?})", self.name)
    }
}

impl fmt::Display for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for Tz {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Tz {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Tz::bundled(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn zones_come_from_the_bundled_database() {
        let tz = Tz::bundled("America/Toronto").unwrap();
        assert_eq!(tz.name(), "America/Toronto");
        let at: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(tz.zone().to_offset(at).seconds(), -4 * 3600);
        assert_eq!(
            Tz::bundled("Mars/Olympus"),
            Err(UnknownTimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn serializes_as_its_name_and_reads_back() {
        let tz = Tz::bundled("Europe/Dublin").unwrap();
        let json = serde_json::to_string(&tz).unwrap();
        assert_eq!(json, "\"Europe/Dublin\"");
        assert_eq!(serde_json::from_str::<Tz>(&json).unwrap(), tz);
        assert!(serde_json::from_str::<Tz>("\"Nowhere/Else\"").is_err());
    }
}
