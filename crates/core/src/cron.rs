//! Five-field cron expressions (`minute hour day-of-month month
//! day-of-week`), read in a time zone with jiff so that daylight-saving
//! changes are handled: a local time that does not exist (spring forward)
//! fires at the first instant after the gap; one that happens twice (fall
//! back) fires once, at the earlier instant.
//!
//! Supported: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and
//! `a-b/n`, month names `jan`–`dec`, day names `sun`–`sat`, and `7` for
//! Sunday. As in Vixie cron, when both day-of-month and day-of-week are
//! restricted, a day matching either fires.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    dom_restricted: bool,
    dow_restricted: bool,
}

/// Why a cron expression was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    message: String,
}

fn err(message: impl Into<String>) -> CronError {
    CronError {
        message: message.into(),
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far back or forward a search looks: enough for a rule that fires
/// only on 29 February.
const SEARCH_DAYS: i32 = 8 * 366;

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Field {
    fn value(&self, s: &str) -> Result<u32, CronError> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.min + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            err(format!(
                "{} field: expected a number from {} to {}, found \"{s}\"",
                self.name, self.min, self.max
            ))
        })?;
        if v < self.min || v > self.max {
            return Err(err(format!(
                "{} field: {v} is out of range {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    /// Parses one field into a bit set (bit `v` set when `v` matches) and
    /// whether it was restricted (not `*`).
    fn parse(&self, s: &str) -> Result<(u64, bool), CronError> {
        let mut bits = 0u64;
        let restricted = s != "*";
        for item in s.split(',') {
            if item.is_empty() {
                return Err(err(format!(
                    "{} field: empty list item in \"{s}\"",
                    self.name
                )));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, st)) => {
                    let step: u32 = st
                        .parse()
                        .map_err(|_| err(format!("{} field: bad step \"{st}\"", self.name)))?;
                    if step == 0 {
                        return Err(err(format!("{} field: step must be at least 1", self.name)));
                    }
                    (r, step)
                }
                None => (item, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(err(format!(
                        "{} field: range {a}-{b} runs backwards",
                        self.name
                    )));
                }
                (a, b)
            } else {
                let v = self.value(range)?;
                // `5/15` means from 5 to the maximum, every 15.
                if step > 1 { (v, self.max) } else { (v, v) }
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, restricted))
    }
}

impl Cron {
    /// Parses a five-field expression.
    pub fn parse(source: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let minute = Field {
            name: "minute",
            min: 0,
            max: 59,
            names: &[],
        };
        let hour = Field {
            name: "hour",
            min: 0,
            max: 23,
            names: &[],
        };
        let dom = Field {
            name: "day-of-month",
            min: 1,
            max: 31,
            names: &[],
        };
        let month = Field {
            name: "month",
            min: 1,
            max: 12,
            names: &MONTHS,
        };
        let dow = Field {
            name: "day-of-week",
            min: 0,
            max: 7,
            names: &DAYS,
        };
        let (minutes, _) = minute.parse(fields[0])?;
        let (hours, _) = hour.parse(fields[1])?;
        let (days, dom_restricted) = dom.parse(fields[2])?;
        let (months, _) = month.parse(fields[3])?;
        let (mut weekdays, dow_restricted) = dow.parse(fields[4])?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            source: fields.join(" "),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            dom_restricted,
            dow_restricted,
        })
    }

    /// The expression as written (whitespace normalised).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month() as u16) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day() as u32) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset() as u8) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// Local times of day that fire, in order.
    fn times(&self) -> impl DoubleEndedIterator<Item = Time> + '_ {
        (0..24i8)
            .filter(move |h| self.hours & (1 << *h as u32) != 0)
            .flat_map(move |h| {
                (0..60i8)
                    .filter(move |m| self.minutes & (1 << *m as u64) != 0)
                    .map(move |m| Time::constant(h, m, 0, 0))
            })
    }

    fn instant(tz: &TimeZone, date: Date, time: Time) -> Option<Timestamp> {
        tz.to_ambiguous_timestamp(DateTime::from_parts(date, time))
            .compatible()
            .ok()
    }

    /// The latest firing at or before `at`, read in `tz`; `None` if it did
    /// not fire within the search window (eight years).
    pub fn latest_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let today = at.to_zoned(tz.clone()).date();
        // A firing on the next local day can map before `at` near a
        // daylight-saving change, so start one day ahead.
        let mut day = today.checked_add(1.day()).ok()?;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                for t in self.times().rev() {
                    if let Some(ts) = Self::instant(tz, day, t)
                        && ts <= at
                    {
                        return Some(ts);
                    }
                }
            }
            day = day.checked_sub(1.day()).ok()?;
        }
        None
    }

    /// The first firing strictly after `at`, read in `tz`.
    pub fn next_after(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let today = at.to_zoned(tz.clone()).date();
        let mut day = today.checked_sub(1.day()).ok()?;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                for t in self.times() {
                    if let Some(ts) = Self::instant(tz, day, t)
                        && ts > at
                    {
                        return Some(ts);
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }
}

/// Converts a timestamp to a zoned time, for display.
pub fn zoned(at: Timestamp, tz: &TimeZone) -> Zoned {
    at.to_zoned(tz.clone())
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cron::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn toronto() -> TimeZone {
        crate::tz::Tz::bundled("America/Toronto")
            .expect("tz")
            .zone()
            .clone()
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "5-1 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "1,,2 * * * *",
            "* * * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn latest_weekday_rule() {
        let c = Cron::parse("0 8 * * 1-5").expect("parse");
        let tz = toronto();
        // Monday 2026-03-09 10:00 local: fired at 08:00 the same day.
        let at = ts("2026-03-09T14:00:00Z");
        let got = c.latest_at_or_before(at, &tz).expect("fired");
        assert_eq!(
            zoned(got, &tz).to_string(),
            "2026-03-09T08:00:00-04:00[America/Toronto]"
        );
        // Sunday: last fired Friday.
        let at = ts("2026-03-08T18:00:00Z");
        let got = c.latest_at_or_before(at, &tz).expect("fired");
        assert_eq!(zoned(got, &tz).date().to_string(), "2026-03-06");
    }

    #[test]
    fn spring_forward_gap_fires_after_the_gap() {
        // 02:30 does not exist in Toronto on 2026-03-08.
        let c = Cron::parse("30 2 * * *").expect("parse");
        let tz = toronto();
        let next = c.next_after(ts("2026-03-08T05:00:00Z"), &tz).expect("next");
        assert_eq!(
            zoned(next, &tz).to_string(),
            "2026-03-08T03:30:00-04:00[America/Toronto]"
        );
    }

    #[test]
    fn fall_back_fires_once() {
        let c = Cron::parse("30 1 * * *").expect("parse");
        let tz = toronto();
        let first = c.next_after(ts("2026-11-01T04:00:00Z"), &tz).expect("next");
        assert_eq!(first, ts("2026-11-01T05:30:00Z"));
        let second = c.next_after(first, &tz).expect("next");
        assert_eq!(zoned(second, &tz).date().to_string(), "2026-11-02");
    }

    #[test]
    fn names_steps_and_sunday_seven() {
        let c = Cron::parse("*/15 9-17 * jan-mar sun,7").expect("parse");
        let tz = TimeZone::UTC;
        let got = c.next_after(ts("2026-01-01T00:00:00Z"), &tz).expect("next");
        // 2026-01-04 is the first Sunday.
        assert_eq!(got, ts("2026-01-04T09:00:00Z"));
        let got = c.next_after(got, &tz).expect("next");
        assert_eq!(got, ts("2026-01-04T09:15:00Z"));
    }

    #[test]
    fn dom_and_dow_are_ored() {
        let c = Cron::parse("0 0 1 * mon").expect("parse");
        let tz = TimeZone::UTC;
        // 2026-06-01 is a Monday; next is Monday the 8th.
        let got = c.next_after(ts("2026-06-01T00:00:00Z"), &tz).expect("next");
        assert_eq!(got, ts("2026-06-08T00:00:00Z"));
    }
}
