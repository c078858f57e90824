//! Reading a TOML configuration without ever repeating a value: the file's secrets
//! (database URLs, webhook tokens) must not reach stderr or a log through an error.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use crate::Error;

/// A TOML file that does not parse or does not fit: the key, by its dotted path
/// (`notify.targets`, `checks[1].url`), and what is wrong with it, with the file and line;
/// never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TomlError {
    /// The key's dotted path; the file's name when no key can be told.
    pub field: String,
    /// What was expected, and where (`invalid type: string, expected a sequence (FILE line 3)`).
    pub message: String,
}

impl From<TomlError> for Error {
    fn from(e: TomlError) -> Self {
        Error::Invalid { field: e.field, message: e.message }
    }
}

/// Parses a TOML configuration read from `file`. Unlike toml's own errors (its `Display`
/// prints the source line, its message quotes the value: `invalid type: string
/// "slack://…/TOKEN", expected a sequence`), the error names the key and what was expected,
/// and never repeats a value: config files hold database URLs and webhook tokens.
pub fn parse_toml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e| {
        let message = without_values(e.message());
        let Some(at) = e.span().map(|s| s.start) else {
            return TomlError { field: file.display().to_string(), message };
        };
        let line = text.get(..at).unwrap_or(text).matches('\n').count() + 1;
        match key_at(text, at) {
            Some(field) => TomlError { field, message: format!("{message} ({} line {line})", file.display()) },
            None => TomlError { field: file.display().to_string(), message: format!("line {line}: {message}") },
        }
    })
}

/// The dotted path of the innermost key whose name or value covers byte `at`.
fn key_at(text: &str, at: usize) -> Option<String> {
    // Recoverable: a syntax error (an unquoted value) still yields the keys around it.
    let (root, _) = DeTable::parse_recoverable(text);
    let mut best = None;
    walk(&DeValue::Table(root.into_inner()), "", at, &mut best);
    best.map(|(_, path)| path)
}

fn walk(value: &DeValue<'_>, path: &str, at: usize, best: &mut Option<(usize, String)>) {
    let children: Vec<(String, Vec<Range<usize>>, &DeValue<'_>)> = match value {
        DeValue::Table(t) => t
            .iter()
            .map(|(k, v)| {
                let name = k.get_ref();
                let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let name = if bare { name.to_string() } else { format!("{name:?}") };
                let path = if path.is_empty() { name } else { format!("{path}.{name}") };
                (path, vec![k.span(), v.span()], v.get_ref())
            })
            .collect(),
        DeValue::Array(a) => {
            a.iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), vec![v.span()], v.get_ref())).collect()
        }
        _ => Vec::new(),
    };
    for (path, spans, child) in children {
        for s in spans {
            if s.start <= at && at <= s.end && best.as_ref().is_none_or(|(len, _)| s.len() <= *len) {
                *best = Some((s.len(), path.clone()));
            }
        }
        walk(child, &path, at, best);
    }
}

/// The parser's message without the values it quotes (`"…"` or `` `…` ``): kept are field
/// names (`unknown field `x``, `missing field `x``) and everything from `, expected` on,
/// which comes from the schema, not the file.
fn without_values(message: &str) -> String {
    let mut out = String::new();
    let mut expected = false;
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        expected |= rest.starts_with(", expected ");
        if expected || (c != '"' && c != '`') {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        // The closing quote (a `"` string has backslash escapes); unterminated: to the end.
        let mut escaped = false;
        let end = rest[1..]
            .char_indices()
            .find(|&(_, q)| {
                let close = q == c && !escaped;
                escaped = c == '"' && q == '\\' && !escaped;
                close
            })
            .map_or(rest.len(), |(i, _)| i + 2);
        if out.ends_with("field ") {
            out.push_str(&rest[..end]);
        } else {
            out.truncate(out.trim_end().len());
        }
        rest = &rest[end..];
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        #[serde(default)]
        notify: Notify,
        #[serde(default)]
        checks: Vec<Check>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Notify {
        #[serde(default)]
        targets: Vec<String>,
        #[serde(default)]
        attempts: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Check {
        url: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Rename,
        Copytruncate,
    }

    fn err(text: &str) -> String {
        let e = parse_toml::<Config>(text, Path::new("/etc/x.toml")).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains("SECRET"), "the value is printed: {s}");
        s
    }

    #[test]
    fn errors_name_the_key_and_never_the_value() {
        let cases = [
            (
                "[notify]\ntargets = \"slack://h/T/B/SECRET\"\n",
                "notify.targets: invalid type: string, expected a sequence (/etc/x.toml line 2)",
            ),
            ("notify.targets = \"a, expected SECRET\"", "notify.targets: invalid type: string, expected a sequence"),
            ("notify = { targets = [\"a\", 7] }", "notify.targets[1]: invalid type: integer, expected a string"),
            ("[notify]\ntargets = [\n  \"a\",\n  { u = \"SECRET\" },\n]\n", "notify.targets[1]: invalid type: map"),
            ("[notify]\nattempts = -1 # SECRET\n", "notify.attempts: invalid value: integer, expected u32"),
            ("[[checks]]\nurl = \"x\"\n[[checks]]\nurl = [\"SECRET\"]\n", "checks[1].url: invalid type: sequence"),
            ("[notify]\ntargetz = [\"SECRET\"]\n", "notify.targetz: unknown field `targetz`, expected `targets` or"),
            ("mode = \"SECRET\"", "mode: unknown variant, expected `rename` or `copytruncate`"),
            ("[notify]\ntargets = slack://SECRET\n", "notify.targets: string values must be quoted"),
            ("[notify]\ntargets = [\"SECRET\n", "notify.targets"),
            ("\"odd key\" = \"SECRET\"", "\"odd key\": unknown field `odd key`"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
        // No key to name (a duplicate is reported at the second one): the file and line.
        assert_eq!(err("mode = \"rename\"\nmode = \"SECRET\""), "/etc/x.toml: line 2: duplicate key");
    }

    #[test]
    fn quoted_values_are_cut_but_field_names_and_the_expected_part_stay() {
        assert_eq!(
            without_values("invalid type: string \"a\\\"b\", expected a map"),
            "invalid type: string, expected a map"
        );
        assert_eq!(without_values("missing field `url`"), "missing field `url`");
        assert_eq!(without_values("duplicate field `url`"), "duplicate field `url`");
        assert_eq!(without_values("\"SECRET\" is not a duration"), "is not a duration");
        assert_eq!(without_values("bad `SECRET"), "bad");
    }
}
