//! Prometheus text exposition (format 0.0.4), parsed as far as a smoke check needs: every
//! line must be well formed; the answer is the set of series (sample names) it carries.

use std::collections::BTreeSet;

pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_value(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf") || s.parse::<f64>().is_ok()
}

/// The rest after `{label="value",...}`, or what is wrong.
fn labels(s: &str) -> Result<&str, String> {
    let mut rest = s.strip_prefix('{').unwrap_or(s).trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let name = rest[..eq].trim();
        if !is_name(name) || name.contains(':') {
            return Err(format!("{name:?} is not a label name"));
        }
        let value = rest[eq + 1..].trim_start().strip_prefix('"').ok_or("a label value is not quoted")?;
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map(|(i, _)| i)
            .ok_or("an unterminated label value")?;
        rest = value[end + 1..].trim_start();
        rest = rest.strip_prefix(',').map_or(rest, str::trim_start);
    }
}

/// The sample names of a text exposition, or `line N: what is wrong`.
pub(super) fn series(text: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |what: String| format!("line {}: {what}", i + 1);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    if !is_name(name) {
                        return Err(bad(format!("{name:?} is not a metric name")));
                    }
                    if !matches!(*kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                        return Err(bad(format!("{kind:?} is not a metric type")));
                    }
                }
                ["TYPE", ..] => return Err(bad("TYPE needs a name and a type".into())),
                ["HELP", name, ..] if !is_name(name) => return Err(bad(format!("{name:?} is not a metric name"))),
                _ => {}
            }
            continue;
        }
        let end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        let name = &line[..end];
        if name.is_empty() {
            return Err(bad(format!("{:?} is not a sample", super::template::cut(line, 40))));
        }
        if !is_name(name) {
            return Err(bad(format!("{name:?} is not a metric name")));
        }
        let rest = line[end..].trim_start();
        let rest = if rest.starts_with('{') { labels(rest).map_err(bad)? } else { rest };
        let mut fields = rest.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(v), ts, None) if is_value(v) && ts.is_none_or(|t| t.parse::<i64>().is_ok()) => {}
            _ => return Err(bad(format!("{name}: {:?} is not a value [timestamp]", rest.trim()))),
        }
        out.insert(name.to_owned());
    }
    if out.is_empty() {
        return Err("no sample".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition_parses_and_garbage_is_named_by_line() {
        let text = "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n\
                    http_requests_total{method=\"post\",path=\"/a \\\"b\\\"\",} 1027 1395066363000\n\
                    lat_bucket{le=\"+Inf\"} +Inf\nnan_metric NaN\n";
        let got = series(text).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["http_requests_total", "lat_bucket", "nan_metric", "up"]);
        let cases = [
            ("<html>oops</html>", "line 1: \"<html>oops</html>\" is not a metric name"),
            ("up one", "line 1: up: \"one\" is not a value [timestamp]"),
            ("# TYPE up thing\nup 1", "line 1: \"thing\" is not a metric type"),
            ("up{a=b} 1", "line 1: a label value is not quoted"),
            ("up{a=\"b} 1", "line 1: an unterminated label value"),
            ("up 1 2 3", "line 1: up: \"1 2 3\" is not a value [timestamp]"),
            ("# only comments\n", "no sample"),
            ("{\"status\": \"healthy\"}", "line 1: \"{\\\"status\\\": \\\"healthy\\\"}\" is not a sample"),
        ];
        for (text, expected) in cases {
            assert_eq!(series(text).unwrap_err(), expected, "{text}");
        }
    }
}
