//! When the TLS certificate of an HTTPS endpoint expires (the security scan warns before it
//! does). The certificate is read from a real handshake, whatever its trust: an expired or
//! self-signed certificate is exactly what the check must be able to report.

use std::time::Duration;

use maint_core::chrono::{DateTime, Utc};
use serde::Serialize;

/// The certificate an endpoint presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// `host:port` (never the full URL: webhook URLs carry tokens).
    pub endpoint: String,
    /// The leaf certificate's subject.
    pub subject: String,
    /// Its `notAfter`.
    pub not_after: DateTime<Utc>,
}

/// `host:port` of an `https://` URL, or `None` for anything else.
pub fn https_endpoint(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if u.scheme() != "https" {
        return None;
    }
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

/// Connects to `https://host:port/`, completes the handshake and an HTTP request (any status
/// will do; a GET of `/`: some servers never answer a HEAD), and reads the leaf certificate's subject and expiry.
/// A redirect is not followed: the certificate is the endpoint's own, from that one connection.
pub async fn certificate_expiry(endpoint: &str, timeout: Duration) -> Result<CertificateInfo, String> {
    let client = reqwest::Client::builder()
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        // Only the certificate is read (the request is a GET of /, its body unread): an untrusted or expired
        // certificate must still be readable to be reported.
        .tls_danger_accept_invalid_certs(true)
        .timeout(timeout)
        .build()
        .map_err(|e| maint_core::one_line(&e))?;
    let resp = client
        .get(format!("https://{endpoint}/"))
        .send()
        .await
        .map_err(|e| format!("{endpoint}: {}", maint_core::one_line(&e)))?;
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .ok_or_else(|| format!("{endpoint}: no certificate presented"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("{endpoint}: unreadable certificate: {e}"))?;
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| format!("{endpoint}: certificate expiry out of range"))?;
    Ok(CertificateInfo { endpoint: endpoint.to_owned(), subject: cert.subject().to_string(), not_after })
}
