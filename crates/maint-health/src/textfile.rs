//! The one writer of Prometheus text (exposition format 0.0.4) for every textfile and push:
//! each family gets its `# HELP` and `# TYPE`; counters are named `_total`, gauges are not
//! (what `promtool check metrics` asks for).

use std::fmt::Write as _;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (until its source restarts); its name ends with `_total`.
    Counter,
}

/// One metric family: a name, its help, its type and its samples (label pairs, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric name.
    pub name: String,
    /// The `# HELP` text (one line).
    pub help: String,
    /// Gauge or counter.
    pub kind: Kind,
    /// The samples: label pairs and value.
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    /// A family without samples yet.
    pub fn new(name: impl Into<String>, kind: Kind, help: impl Into<String>) -> Self {
        Family { name: name.into(), help: help.into(), kind, samples: Vec::new() }
    }

    /// Adds a sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.samples.push((labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), value));
        self
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

/// The families as Prometheus text; a family without samples is left out.
///
/// # Panics
/// In debug builds, when a name breaks the `_total` rule of its kind (a bug in the caller).
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        debug_assert_eq!(
            f.name.ends_with("_total"),
            f.kind == Kind::Counter,
            "{}: _total is for counters only",
            f.name
        );
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}\n# TYPE {} {kind}", f.name, f.name);
        for (labels, value) in &f.samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
            let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
            let _ = writeln!(out, "{}{labels} {}", f.name, number(*value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_labels_are_escaped() {
        let mut c = Family::new("x_events_total", Kind::Counter, "Events.");
        c.sample(&[], 3.0);
        let mut g = Family::new("x_age_seconds", Kind::Gauge, "Age, in seconds.");
        g.sample(&[("task", "a\"b\\c")], f64::INFINITY).sample(&[("task", "d")], 1.5);
        let empty = Family::new("x_never", Kind::Gauge, "Never written.");
        assert_eq!(
            render(&[c, g, empty]),
            "# HELP x_events_total Events.\n# TYPE x_events_total counter\nx_events_total 3\n\
             # HELP x_age_seconds Age, in seconds.\n# TYPE x_age_seconds gauge\n\
             x_age_seconds{task=\"a\\\"b\\\\c\"} +Inf\nx_age_seconds{task=\"d\"} 1.5\n"
        );
    }
}
