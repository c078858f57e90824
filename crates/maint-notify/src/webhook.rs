//! Generic JSON webhooks signed per the Standard Webhooks convention, and the verifier
//! receivers can use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use maint_core::Secret;
use sha2::{Digest, Sha256};

use crate::{Error, Notification, Notifier, http};

/// How far a `webhook-timestamp` may be from the receiver's clock.
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A JSON webhook: the body is the [`Notification`] as JSON, with the headers
/// `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` + base64 of
/// HMAC-SHA256 over `id.timestamp.body`, keyed with the base64-decoded `whsec_` secret).
#[derive(Debug)]
pub struct Webhook {
    url: Secret,
    key: Secret,
    name: String,
    client: reqwest::Client,
}

impl Webhook {
    /// `secret` is a Standard Webhooks secret (`whsec_` + base64).
    pub fn new(url: Secret, secret: &Secret, name: impl Into<String>, timeout: Duration) -> Result<Self, String> {
        decode_secret(secret.expose())?;
        Ok(Webhook { url, key: secret.clone(), name: name.into(), client: http::client(timeout) })
    }
}

/// The key bytes of a `whsec_...` secret.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = B64.decode(b64).map_err(|_| "the signing secret is not base64 (expected whsec_<base64>)".to_owned())?;
    if key.len() < 16 {
        return Err("the signing secret is shorter than 16 bytes".into());
    }
    Ok(key)
}

/// The `webhook-signature` value for a message.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Why a received webhook was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The secret is not a valid `whsec_` secret.
    #[error("bad signing secret: {0}")]
    BadSecret(String),
    /// `webhook-timestamp` is not a number, or so far from `now` that the difference overflows.
    #[error("webhook-timestamp is not a unix time")]
    BadTimestamp,
    /// The timestamp is more than [`WEBHOOK_TOLERANCE`] away from now (a replay, or a clock problem).
    #[error("webhook-timestamp is {0} s away from now (tolerance 300 s)")]
    OutsideTolerance(i64),
    /// No `v1` signature in the header matches the body.
    #[error("no signature matches")]
    BadSignature,
}

/// Verifies a received webhook: the three header values, the raw body, and the receiver's
/// clock (`now`, unix seconds). Accepts any of several space-separated signatures (key rotation).
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let key = decode_secret(secret).map_err(VerifyError::BadSecret)?;
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.checked_sub(ts).ok_or(VerifyError::BadTimestamp)?;
    if skew.unsigned_abs() > WEBHOOK_TOLERANCE.as_secs() {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    for sig in signatures.split_whitespace() {
        let Some(b64) = sig.strip_prefix("v1,") else { continue };
        let Ok(given) = B64.decode(b64) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
        mac.update(format!("{msg_id}.{ts}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn message_id(n: &Notification, now: &chrono::DateTime<chrono::Utc>) -> String {
    let seq = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!(
        "{}|{}|{}|{seq}",
        n.event_key,
        now.timestamp_nanos_opt().unwrap_or(0),
        std::process::id()
    ));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

#[async_trait]
impl Notifier for Webhook {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        let key = decode_secret(self.key.expose()).map_err(Error::permanent)?;
        let body = serde_json::to_vec(n).map_err(|e| Error::permanent(e.to_string()))?;
        let now = chrono::Utc::now();
        let id = message_id(n, &now);
        let signature = sign(&key, &id, now.timestamp(), &body);
        let headers =
            [("webhook-id", id), ("webhook-timestamp", now.timestamp().to_string()), ("webhook-signature", signature)];
        http::post_json(&self.client, self.url.expose(), &headers, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference implementation.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn matches_the_reference_signature() {
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&decode_secret(SECRET).unwrap(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            verify(
                SECRET,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                &format!("v0,xxx {sig}"),
                body,
                1614265330 + 299
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_replays_and_bad_secrets() {
        let key = decode_secret(SECRET).unwrap();
        let sig = sign(&key, "msg_1", 1000, b"{}");
        assert_eq!(verify(SECRET, "msg_1", "1000", &sig, b"{ }", 1000), Err(VerifyError::BadSignature));
        assert_eq!(verify(SECRET, "msg_2", "1000", &sig, b"{}", 1000), Err(VerifyError::BadSignature));
        assert_eq!(verify(SECRET, "msg_1", "1000", &sig, b"{}", 1301), Err(VerifyError::OutsideTolerance(301)));
        assert_eq!(verify(SECRET, "msg_1", "1000", &sig, b"{}", 699), Err(VerifyError::OutsideTolerance(-301)));
        assert_eq!(verify(SECRET, "msg_1", "later", &sig, b"{}", 1000), Err(VerifyError::BadTimestamp));
        assert!(matches!(verify("whsec_!!", "msg_1", "1000", &sig, b"{}", 1000), Err(VerifyError::BadSecret(_))));
    }

    #[test]
    fn extreme_timestamps_are_rejected_without_overflow() {
        let key = decode_secret(SECRET).unwrap();
        for ts in [i64::MIN, i64::MAX] {
            let sig = sign(&key, "msg_1", ts, b"{}");
            for now in [0, 1_700_000_000, -1_700_000_000, i64::MIN, i64::MAX] {
                if now == ts {
                    continue;
                }
                let got = verify(SECRET, "msg_1", &ts.to_string(), &sig, b"{}", now);
                assert!(
                    matches!(got, Err(VerifyError::BadTimestamp | VerifyError::OutsideTolerance(_))),
                    "ts {ts}, now {now}: {got:?}"
                );
            }
        }
        assert_eq!(
            verify(SECRET, "msg_1", "-9223372036854775808", "v1,AAAA", b"{}", 1_700_000_000),
            Err(VerifyError::BadTimestamp)
        );
    }
}
