//! Targets as URLs, Apprise style, parsed into typed backends.
//!
//! | URL | backend |
//! |---|---|
//! | `slack://hooks.slack.com/services/T/B/X` | Slack incoming webhook (https) |
//! | `teams://prod.westeurope.logic.azure.com/workflows/...?...` | Teams Workflows webhook (https) |
//! | `pagerduty://ROUTING_KEY` | PagerDuty Events API v2 |
//! | `webhook+https://example.com/hook?secret=whsec_...` | signed JSON webhook |
//! | `smtp://user:pass@mail.example.com:587?from=a@x&to=b@x,c@x` | email, STARTTLS |
//! | `smtps://...` | email, TLS from the first byte |
//! | `log://`, `log://stderr` | tracing event, or a line on stderr |
//!
//! `KIND+http://` and `KIND+https://` pick the scheme of the real endpoint (`slack+http://`
//! for a local test server; `pagerduty+http://KEY@host:port/path` for another endpoint).
//! Every URL accepts `severity=warning` (the lowest severity sent there) and `rate=N`
//! (messages per second; Slack defaults to 1). For SMTP, `tls=starttls|tls|none`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use maint_core::Secret;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::email::{Email, EmailConfig, SmtpTls};
use crate::pagerduty::PAGERDUTY_EVENTS_URL;
use crate::{
    Dispatcher, Error, LogNotifier, Notifier, PagerDuty, RateLimited, RetryPolicy, Severity, Slack, Target, Teams,
    Webhook,
};

/// Notification settings, as in the `[notify]` table of a binary's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Target URLs (secrets: they hold tokens). Empty means `log://`.
    pub targets: Vec<Secret>,
    /// Timeout of one attempt, seconds.
    pub request_timeout_secs: f64,
    /// Timeout of all attempts to one target, seconds.
    pub total_timeout_secs: f64,
    /// Attempts per target, the first included.
    pub max_attempts: u32,
    /// First backoff, milliseconds.
    pub min_backoff_ms: u64,
    /// Largest backoff and largest `Retry-After` honoured, seconds.
    pub max_backoff_secs: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            targets: Vec::new(),
            request_timeout_secs: 10.0,
            total_timeout_secs: 60.0,
            max_attempts: 5,
            min_backoff_ms: 500,
            max_backoff_secs: 30.0,
        }
    }
}

fn secs(field: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or_else(|| Error::InvalidTarget {
        target: format!("config.{field}"),
        message: format!("{v} is not a positive number of seconds"),
    })
}

impl Config {
    /// Parses every target and builds the dispatcher. A bad URL is an error naming the
    /// target by position and kind, never by its secret parts.
    pub fn build(&self) -> Result<Dispatcher, Error> {
        let timeout = secs("request_timeout_secs", self.request_timeout_secs)?;
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            min_backoff: Duration::from_millis(self.min_backoff_ms),
            max_backoff: secs("max_backoff_secs", self.max_backoff_secs)?,
            total_timeout: secs("total_timeout_secs", self.total_timeout_secs)?,
        };
        let targets = if self.targets.is_empty() {
            vec![Target::new(Arc::new(LogNotifier::tracing()))]
        } else {
            self.targets.iter().enumerate().map(|(i, url)| parse_target(i, url, timeout)).collect::<Result<_, _>>()?
        };
        Ok(Dispatcher::new(targets, policy))
    }
}

/// Parses one target URL (`index` is its position, used in error messages).
pub fn parse_target(index: usize, url: &Secret, timeout: Duration) -> Result<Target, Error> {
    let raw = url.expose().trim();
    let kind_for_errors = raw
        .split("://")
        .next()
        .filter(|k| k.len() < 24 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '+'))
        .unwrap_or("?");
    let bad =
        |message: String| Error::InvalidTarget { target: format!("#{} ({kind_for_errors}://…)", index + 1), message };
    let parsed = Url::parse(raw).map_err(|e| bad(format!("not a URL: {e}")))?;
    let (kind, http_scheme) = match parsed.scheme().split_once('+') {
        Some((k, s @ ("http" | "https"))) => (k.to_owned(), s),
        Some((_, s)) => return Err(bad(format!("unknown transport {s:?} (expected http or https)"))),
        None => (parsed.scheme().to_owned(), "https"),
    };
    let mut min_severity = Severity::Info;
    let mut rate: Option<NonZeroU32> = None;
    let mut passthrough: Vec<(String, String)> = Vec::new();
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "severity" => min_severity = v.parse().map_err(bad)?,
            "rate" => {
                rate =
                    Some(v.parse().map_err(|_| bad(format!("rate {v:?} is not a positive whole number per second")))?);
            }
            "from" | "to" | "tls" => params.push((k.into_owned(), v.into_owned())),
            // base64 has '+': take the raw value and only percent-decode it
            "secret" => params.push(("secret".into(), raw_query_value(&parsed, "secret").unwrap_or_default())),
            _ => passthrough.push((k.into_owned(), v.into_owned())),
        }
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let host = parsed.host_str().unwrap_or_default().to_owned();
    // The real endpoint: our scheme swapped for http(s), our own parameters removed.
    let endpoint = |with_userinfo: bool| -> Result<Url, Error> {
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        let mut u = Url::parse(&format!("{http_scheme}://{host}")).map_err(|e| bad(format!("bad host: {e}")))?;
        u.set_port(parsed.port()).map_err(|_| bad("bad port".into()))?;
        u.set_path(parsed.path());
        if with_userinfo && !parsed.username().is_empty() {
            let _ = u.set_username(parsed.username());
            let _ = u.set_password(parsed.password());
        }
        if passthrough.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(passthrough.iter());
        }
        Ok(u)
    };
    let name_of = |u: &Url| format!("{kind}://{}", u.host_str().unwrap_or_default());
    let notifier: Arc<dyn Notifier> = match kind.as_str() {
        "slack" => {
            let u = endpoint(false)?;
            if u.path().len() <= 1 {
                return Err(bad("no webhook path (expected slack://hooks.slack.com/services/T…/B…/…)".into()));
            }
            let slack = Slack::new(Secret::new(u.to_string()), name_of(&u), timeout);
            Arc::new(RateLimited::new(slack, rate.unwrap_or(NonZeroU32::MIN)))
        }
        "teams" => {
            let u = endpoint(false)?;
            if u.path().len() <= 1 {
                return Err(bad("no webhook path (expected the Workflows URL after teams://)".into()));
            }
            wrap(Teams::new(Secret::new(u.to_string()), name_of(&u), timeout), rate)
        }
        "pagerduty" => {
            let (key, endpoint_url) = if parsed.username().is_empty() {
                (host.clone(), Url::parse(PAGERDUTY_EVENTS_URL).map_err(|e| bad(e.to_string()))?)
            } else {
                (parsed.username().to_owned(), endpoint(false)?)
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(bad("the routing key must be letters and digits (pagerduty://ROUTING_KEY)".into()));
            }
            let name = name_of(&endpoint_url);
            wrap(PagerDuty::new(Secret::new(key), endpoint_url.to_string(), name, timeout), rate)
        }
        "webhook" => {
            let u = endpoint(true)?;
            let secret = param("secret").ok_or_else(|| bad("no signing secret (add ?secret=whsec_…)".into()))?;
            let name = name_of(&u);
            wrap(Webhook::new(Secret::new(u.to_string()), &Secret::new(secret), name, timeout).map_err(bad)?, rate)
        }
        "smtp" | "smtps" => {
            let tls = match (kind.as_str(), param("tls").as_deref()) {
                ("smtps", None) | (_, Some("tls")) => SmtpTls::Tls,
                (_, None) => SmtpTls::StartTls,
                (_, Some("starttls")) => SmtpTls::StartTls,
                (_, Some("none")) => SmtpTls::None,
                (_, Some(other)) => return Err(bad(format!("tls={other:?} (expected starttls, tls or none)"))),
            };
            let decode =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            let user = (!parsed.username().is_empty()).then(|| decode(parsed.username())).flatten();
            let password = parsed.password().and_then(decode).map(Secret::new);
            if host.is_empty() {
                return Err(bad("no host".into()));
            }
            let cfg = EmailConfig {
                host: host.clone(),
                port: parsed.port().unwrap_or(0),
                tls,
                user,
                password,
                from: param("from").ok_or_else(|| bad("no sender (add ?from=maint@example.com)".into()))?,
                to: param("to")
                    .map(|t| t.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default(),
                timeout,
            };
            wrap(Email::new(&cfg, format!("{kind}://{host}")).map_err(bad)?, rate)
        }
        "log" => match host.as_str() {
            "" => wrap(LogNotifier::tracing(), rate),
            "stderr" => wrap(LogNotifier::stderr(), rate),
            other => return Err(bad(format!("log://{other} (expected log:// or log://stderr)"))),
        },
        other => {
            return Err(bad(format!(
                "unknown kind {other:?} (expected slack, teams, pagerduty, webhook, smtp, smtps or log)"
            )));
        }
    };
    Ok(Target { name: notifier.name(), min_severity, notifier })
}

/// Percent-decoding only (form decoding would turn '+' into a space).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn raw_query_value(url: &Url, name: &str) -> Option<String> {
    url.query()?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(percent_decode))
}

fn wrap<N: Notifier>(n: N, rate: Option<NonZeroU32>) -> Arc<dyn Notifier> {
    match rate {
        Some(r) => Arc::new(RateLimited::new(n, r)),
        None => Arc::new(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, Error> {
        parse_target(0, &Secret::new(url), Duration::from_secs(1))
    }

    fn err(url: &str) -> String {
        parse(url).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind_and_names_them_without_secrets() {
        let t = parse("slack://hooks.slack.com/services/T000/B000/XXXXSECRET?severity=warning").unwrap();
        assert_eq!(t.name, "slack://hooks.slack.com");
        assert_eq!(t.min_severity, Severity::Warning);
        assert_eq!(
            parse("teams://prod.logic.azure.com/workflows/abc/triggers/manual?sig=SECRET").unwrap().name,
            "teams://prod.logic.azure.com"
        );
        assert_eq!(parse("pagerduty://R0UT1NGKEYabc").unwrap().name, "pagerduty://events.pagerduty.com");
        assert_eq!(parse("pagerduty+http://KEY123@127.0.0.1:9/v2/enqueue").unwrap().name, "pagerduty://127.0.0.1");
        let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        // '+' in base64 secrets and passwords survives (form decoding would make it a space)
        assert!(parse("webhook+https://example.com/hook?secret=whsec_C2+FB+0Df4XO9c2ZHiVwVbwQlQpt0GCA").is_ok());
        assert_eq!(percent_decode("p%40ss+word%2B"), "p@ss+word+");
        assert_eq!(percent_decode("%é%"), "%é%", "no panic on odd input");
        assert_eq!(
            parse(&format!("webhook+https://example.com/hook?secret={whsec}")).unwrap().name,
            "webhook://example.com"
        );
        assert_eq!(
            parse("smtp://u:p%40ss@mail.example.com:2525?from=maint@example.com&to=a@example.com,b@example.com")
                .unwrap()
                .name,
            "smtp://mail.example.com"
        );
        assert_eq!(
            parse("smtps://mail.example.com?from=maint@example.com&to=a@example.com").unwrap().name,
            "smtps://mail.example.com"
        );
        assert_eq!(parse("log://").unwrap().name, "log://");
        assert_eq!(parse("log://stderr?severity=error").unwrap().min_severity, Severity::Error);
    }

    #[test]
    fn bad_urls_are_one_line_errors_naming_the_target_not_the_secret() {
        let cases = [
            ("slack://", "no host"),
            ("slack://hooks.slack.com", "no webhook path"),
            ("sms://12345", "unknown kind \"sms\""),
            ("slack+ftp://h/x", "unknown transport"),
            ("webhook+https://example.com/hook", "no signing secret"),
            ("webhook+https://example.com/hook?secret=whsec_c2hvcnQ=", "shorter than 16 bytes"),
            ("webhook+https://example.com/hook?secret=whsec_not*base64", "not base64"),
            ("smtp://mail.example.com?to=a@example.com", "no sender"),
            ("smtp://mail.example.com?from=maint@example.com", "no recipient"),
            ("smtp://mail.example.com?from=not-an-address&to=a@example.com", "from address"),
            ("smtp://mail.example.com?from=m@example.com&to=a@example.com&tls=maybe", "tls=\"maybe\""),
            ("slack://hooks.slack.com/services/SECRETPATH?severity=loud", "unknown severity \"loud\""),
            ("slack://hooks.slack.com/services/SECRETPATH?rate=0", "rate \"0\""),
            ("pagerduty://", "routing key"),
            ("not a url", "not a URL"),
            ("ftp://u:SECRETPATH@h/x", "unknown kind \"ftp\""),
        ];
        for (url, want) in cases {
            let e = err(url);
            assert!(e.contains(want), "{url}: {e}");
            assert!(e.starts_with("target #1 ("), "{url}: {e}");
            assert!(!e.contains("SECRETPATH") && !e.contains('\n'), "{url}: {e}");
        }
    }

    #[test]
    fn empty_config_logs_and_bad_numbers_are_errors() {
        let d = Config::default().build().unwrap();
        assert_eq!(d.targets().len(), 1);
        assert_eq!(d.targets()[0].name, "log://");
        let e = Config { request_timeout_secs: -1.0, ..Config::default() }.build().unwrap_err();
        assert!(e.to_string().contains("request_timeout_secs"), "{e}");
        let cfg: Config =
            toml::from_str("targets = [\"slack://hooks.slack.com/services/T/B/X\"]\nmax_attempts = 3").unwrap();
        assert_eq!(cfg.max_attempts, 3);
        assert!(!format!("{cfg:?}").contains("hooks.slack.com"));
    }
}
