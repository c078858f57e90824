//! A tiny JSON path (`$.matches[0].id`) for the smoke suite's assertions and captures.

use serde_json::Value;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A tiny JSON path: `$`, then any of `.key`, `["key"]` / `['key']` and `[n]`
/// (`$.matches[0].id`). Enough for smoke assertions; no wildcards, filters or slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses a path; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix('$').ok_or_else(|| format!("{text:?} does not start with $"))?;
        let b = rest.as_bytes();
        let mut i = 0;
        let mut segments = Vec::new();
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                        end += 1;
                    }
                    if end == start {
                        return Err(format!("{text:?}: empty key at {}", start + 1));
                    }
                    segments.push(Segment::Key(rest[start..end].to_owned()));
                    i = end;
                }
                b'[' => {
                    let close = rest[i..].find(']').map(|p| p + i).ok_or_else(|| format!("{text:?}: missing ]"))?;
                    let inner = &rest[i + 1..close];
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('"') && inner.ends_with('"'))
                            || (inner.starts_with('\'') && inner.ends_with('\'')));
                    if quoted {
                        segments.push(Segment::Key(inner[1..inner.len() - 1].to_owned()));
                    } else {
                        let n = inner
                            .parse()
                            .map_err(|_| format!("{text:?}: [{inner}] is neither an index nor a quoted key"))?;
                        segments.push(Segment::Index(n));
                    }
                    i = close + 1;
                }
                c => return Err(format!("{text:?}: unexpected {:?} at {}", char::from(c), i + 1)),
            }
        }
        Ok(JsonPath { text: text.to_owned(), segments })
    }

    /// The value at this path, if there is one.
    pub fn select<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(value, |v, s| match s {
            Segment::Key(k) => v.as_object()?.get(k),
            Segment::Index(n) => v.as_array()?.get(*n),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selects_keys_indexes_and_quoted_keys() {
        let v = json!({ "matches": [{ "id": "a", "score": 0.9 }], "a.b": { "c-d": true }, "n": null });
        let get = |p: &str| JsonPath::parse(p).unwrap().select(&v).cloned();
        assert_eq!(get("$"), Some(v.clone()));
        assert_eq!(get("$.matches[0].id"), Some(json!("a")));
        assert_eq!(get("$['a.b'].c-d"), Some(json!(true)));
        assert_eq!(get("$[\"a.b\"]['c-d']"), Some(json!(true)));
        assert_eq!(get("$.n"), Some(Value::Null), "null exists");
        assert_eq!(get("$.matches[1]"), None);
        assert_eq!(get("$.matches.id"), None);
        assert_eq!(get("$.missing.deeper"), None);
        for bad in ["matches", "$..a", "$.a[", "$[x]", "$a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
