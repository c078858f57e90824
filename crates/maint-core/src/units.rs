//! Durations and sizes as every configuration file writes them: one grammar each, one
//! type each, so a value accepted in one section is accepted in all.
//!
//! Durations use `humantime`'s grammar (the one `systemd.time` and most Rust tools read):
//! a sum of numbers with units, spaces allowed: `500ms`, `90s`, `30m`, `30min`,
//! `1h30m`, `1 hour`, `15 minutes`, `7d`, `2w`. A number without a unit is refused, never
//! guessed (is `24` hours or seconds? a cache rule deleting keys older than it must not
//! guess). Sizes are a number
//! with an optional unit, powers of 1024 as PostgreSQL reads them: `1048576`, `512kB`,
//! `512MB`, `100GB`, `2TB` (`KiB`, `MiB`, `GiB`, `TiB` too; case does not matter).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a duration looks like, for error messages.
const DURATION_EXAMPLES: &str = "e.g. 500ms, 90s, 30min, 1h30m, 7d, 2w";
/// What a size looks like, for error messages.
const SIZE_EXAMPLES: &str = "e.g. 1048576, 512kB, 512MB, 100GB, 2TB";

/// Parses a duration (see the [module](self) documentation for the grammar).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("empty duration ({DURATION_EXAMPLES})"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} has no unit ({DURATION_EXAMPLES})"));
    }
    humantime::parse_duration(t).map_err(|e| format!("{text:?} is not a duration ({DURATION_EXAMPLES}): {e}"))
}

/// Parses a size in bytes (see the [module](self) documentation for the grammar).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size ({SIZE_EXAMPLES})"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use B, kB, MB, GB or TB)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration from a configuration file: a string in the [grammar](self); written back in
/// humantime's form (`1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// The standard library's duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Duration)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() { f.write_str("0s") } else { write!(f, "{}", humantime::format_duration(self.0)) }
    }
}

/// A size in bytes from a configuration file: a string in the [grammar](self) or a number of
/// bytes; written back as a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

/// A string or a number, as TOML, YAML and JSON write either.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Written::deserialize(d)? {
            Written::Number(n) => Err(serde::de::Error::custom(format!(
                "{n} has no unit: write a duration as a string ({DURATION_EXAMPLES})"
            ))),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Written::deserialize(d)? {
            Written::Number(bytes) => Ok(Size(bytes)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as D;

    #[test]
    fn one_grammar_for_every_duration() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("30min", 1800),
            ("15 minutes", 900),
            ("1 hour", 3600),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("24h", 86_400),
            ("7d", 604_800),
            ("2w", 1_209_600),
            (" 5s ", 5),
        ] {
            assert_eq!(parse_duration(text), Ok(D::from_secs(secs)), "{text}");
        }
        assert_eq!(parse_duration("500ms"), Ok(D::from_millis(500)));
        for bad in ["", "abc", "5 parsecs", "-5s", "1.5.2h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
        assert!(parse_duration("24").unwrap_err().contains("has no unit"));
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        for (text, bytes) in [("1048576", 1 << 20), ("512kB", 512 << 10), ("512MB", 512 << 20), ("100GB", 100 << 30)] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert_eq!(parse_size("2 TiB"), Ok(2 << 40));
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999TB").unwrap_err().contains("too large"));
    }

    #[test]
    fn config_values_are_strings_or_numbers_and_round_trip() {
        #[derive(Deserialize, Serialize, PartialEq, Debug)]
        struct C {
            a: Duration,
            b: Duration,
            s: Size,
            t: Size,
        }
        let c: C = toml::from_str("a = \"30min\"\nb = \"1800s\"\ns = \"1GB\"\nt = 4096\n").unwrap();
        assert_eq!(
            c,
            C { a: Duration::from_secs(1800), b: Duration::from_secs(1800), s: Size(1 << 30), t: Size(4096) }
        );
        let back: C = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(Duration::from_secs(5400).to_string(), "1h 30m");
        let e = toml::from_str::<C>("a = \"soon\"\nb = 1\ns = 1\nt = 1\n").unwrap_err().to_string();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        let e = toml::from_str::<C>("a = 1800\nb = \"1s\"\ns = 1\nt = 1\n").unwrap_err().to_string();
        assert!(e.contains("1800 has no unit"), "{e}");
    }
}
