//! The one HTTP POST every webhook-style backend uses, and how answers are classified.

use std::time::Duration;

use crate::Error;

/// Builds the client a backend keeps (one per target, per-attempt timeout). It follows no
/// redirect and sends no `Referer`: either would hand the URL's secret path, or the body
/// with its routing key, to wherever the destination points.
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .user_agent(concat!("aindusdb-maint/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// POSTs a JSON body. 2xx is success; 408, 429 and 5xx are retryable (with the
/// `Retry-After` the server sent); other statuses are permanent, a 3xx too (see
/// [`redirected`]). Transport errors are retryable, and never carry the URL (it holds the secret).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(), Error> {
    let mut req = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(Error::retryable("timed out")),
        Err(e) => return Err(Error::retryable(format!("request failed: {}", crate::redact_reqwest(e)))),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        return Err(Error::permanent(redirected(&resp)));
    }
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let text = resp.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(200).collect();
    let reason = format!("HTTP {}: {}", status.as_u16(), excerpt.trim());
    let retryable = status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error();
    Err(Error::Send { reason, retryable, retry_after })
}

/// The error for a redirect, which is never followed: the status and at most the target's
/// host (`redirected (HTTP 307) to example.com, not followed`), never a path or query.
pub(crate) fn redirected(resp: &reqwest::Response) -> String {
    let host = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|loc| resp.url().join(loc).ok())
        .and_then(|u| u.host_str().map(|h| format!(" to {h}")))
        .unwrap_or_default();
    format!("redirected (HTTP {}){host}, not followed", resp.status().as_u16())
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::TimeDelta::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1e20"), Some(Duration::from_secs(86_400)), "a hostile value cannot panic");
        assert_eq!(parse_retry_after("NaN"), None);
    }
}
