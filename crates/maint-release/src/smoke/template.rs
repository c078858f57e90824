//! Templating: `${name}` variables in paths, headers, bodies and expected values, and
//! the masking of secret values in messages.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A value on one line, secrets masked, at most 80 characters.
pub(super) fn short(v: &Value, mask: &Masker) -> String {
    cut(&mask.apply(&v.to_string()), 80)
}

/// At most `max` characters, `…` at the end when cut.
pub(super) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() > max { format!("{}…", s.chars().take(max - 1).collect::<String>()) } else { s.to_owned() }
}

/// Replaces the values of secret variables with `***` in a message, before it is cut to
/// length (a cut would otherwise leave a prefix of the secret).
#[derive(Debug, Default)]
pub(super) struct Masker(Vec<String>);

impl Masker {
    /// The values of the `masked` names set in `vars`.
    pub(super) fn new(vars: &Vars, masked: &BTreeSet<String>) -> Self {
        let mut m = Masker::default();
        m.add(masked.iter().filter_map(|n| vars.get(n)));
        m
    }

    /// Masks these values too: as they are, and as they appear inside a JSON string.
    pub(super) fn add<'a>(&mut self, values: impl IntoIterator<Item = &'a Value>) {
        for v in values {
            let text = text_of(v);
            let quoted = Value::String(text.clone()).to_string();
            self.0.extend([quoted[1..quoted.len() - 1].to_owned(), text].into_iter().filter(|t| !t.is_empty()));
        }
        // The longest first: a secret that contains another is masked whole.
        self.0.sort_by_key(|t| std::cmp::Reverse(t.len()));
        self.0.dedup();
    }

    pub(super) fn apply(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |t, secret| t.replace(secret.as_str(), "***"))
    }
}

/// Whether a string is a variable name (`index_id`).
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The `${name}` references in a text.
pub(super) fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

pub(super) fn value_references(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => references(s),
        Value::Array(a) => a.iter().flat_map(value_references).collect(),
        Value::Object(o) => o.values().flat_map(value_references).collect(),
        _ => Vec::new(),
    }
}

pub(super) type Vars = BTreeMap<String, Value>;

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `${name}`; `masked` names print as `***`. Err: the first unset name.
pub(super) fn render(text: &str, vars: &Vars, masked: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| name.to_owned())?;
        out.push_str(&rest[..start]);
        if masked.contains(name) {
            out.push_str("***");
        } else {
            out.push_str(&text_of(value));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn render_value(v: &Value, vars: &Vars) -> Result<Value, String> {
    let none = BTreeSet::new();
    Ok(match v {
        Value::String(s) => {
            let whole = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')).filter(|n| is_name(n));
            match whole {
                Some(name) => vars.get(name).cloned().ok_or_else(|| name.to_owned())?,
                None => Value::String(render(s, vars, &none)?),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, vars)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter().map(|(k, x)| Ok((k.clone(), render_value(x, vars)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::SmokeSuite;
    use crate::smoke::field;

    #[test]
    fn templates_keep_json_types_and_mask_secrets() {
        let vars: Vars = BTreeMap::from([
            ("id".to_owned(), json!(42)),
            ("token".to_owned(), json!("s3cr3t")),
            ("name".to_owned(), json!("idx")),
        ]);
        let masked = BTreeSet::from(["token".to_owned()]);
        assert_eq!(render("/a/${id}/${name}", &vars, &BTreeSet::new()).unwrap(), "/a/42/idx");
        assert_eq!(render("/a?t=${token}", &vars, &masked).unwrap(), "/a?t=***");
        assert_eq!(render("/a/${nope}", &vars, &masked).unwrap_err(), "nope");
        let body = render_value(&json!({ "n": "${id}", "s": "x-${id}", "l": ["${name}"] }), &vars).unwrap();
        assert_eq!(body, json!({ "n": 42, "s": "x-42", "l": ["idx"] }));

        // Values are masked as they are and inside JSON strings, before a cut.
        let vars: Vars = BTreeMap::from([("t".to_owned(), json!("a\"b")), ("u".to_owned(), json!("s3cr3t"))]);
        let mask = Masker::new(&vars, &BTreeSet::from(["t".to_owned(), "u".to_owned()]));
        assert_eq!(mask.apply("a\"b / \"a\\\"b\" / s3cr3ts3cr3t"), "*** / \"***\" / ******");
        let long = json!(format!("{}s3cr3t", "x".repeat(76)));
        assert_eq!(short(&long, &mask), format!("\"{}**…", "x".repeat(76)), "no prefix of the secret is left");
        // A secret is a variable of the suite, of the runner or a capture.
        let suite: SmokeSuite = toml::from_str(
            "name = \"s\"\nsecrets = [\"sid\", \"token\"]\n[[steps]]\nname = \"a\"\npath = \"/\"\ncapture = { sid = \"$.id\" }",
        )
        .unwrap();
        suite.validate_with(&BTreeSet::from(["token".to_owned()])).unwrap();
        assert_eq!(
            field(suite.validate_with(&BTreeSet::new()).unwrap_err()),
            "secrets: \"token\" is not a variable (of the suite, the runner, or captured by a step)"
        );
    }
}
