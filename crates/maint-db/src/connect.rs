//! The one way aindusdb-maint connects to PostgreSQL: a URL or `key=value` conninfo with
//! libpq's `sslmode` and `sslrootcert`, over rustls.
//!
//! | `sslmode`   | encrypted                     | certificate checked                          |
//! |-------------|-------------------------------|----------------------------------------------|
//! | `disable`   | no                            | –                                            |
//! | `prefer`    | when the server offers TLS    | no (the default, as in libpq)                |
//! | `require`   | yes                           | no; with `sslrootcert`, as `verify-ca` (libpq) |
//! | `verify-ca` | yes                           | chain to `sslrootcert`, host name not checked |
//! | `verify-full` | yes                         | chain to `sslrootcert` and the host name     |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for the system's
//! trusted roots, which are also used when `verify-ca`/`verify-full` name no file.
//! `sslmode=allow` is refused (use `prefer` or `disable`). With `prefer`, a server that
//! refuses TLS is spoken to in plain text; a failed TLS handshake is an error (libpq retries
//! in plain text). Environment variables (`PGSSLMODE`, ...) are not read: the URL says it all.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::config::SslMode as DriverSslMode;
use deadpool_postgres::tokio_postgres::{self, Client};
use maint_core::{Secret, one_line};
use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
pub use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;
use crate::db::describe;

/// The connect timeout when the URL sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The field named by configuration errors.
const FIELD: &str = "database_url";

/// libpq's `sslmode` (without `allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS without verification when the server offers it, else plain text.
    #[default]
    Prefer,
    /// TLS without verification (with `sslrootcert`: as [`SslMode::VerifyCa`]).
    Require,
    /// TLS, the chain verified, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, Error> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err(Error::invalid(FIELD, "sslmode=allow is not supported (use prefer or disable)")),
            other => {
                return Err(Error::invalid(
                    FIELD,
                    format!(
                        "sslmode `{}` is not one of disable, prefer, require, verify-ca, verify-full",
                        other.escape_default()
                    ),
                ));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed connection string: the driver's configuration and the TLS connector that goes
/// with it. Cloning is cheap. Use [`PgConnector::connect`] for one session, or
/// [`PgConnector::config`] and [`PgConnector::tls`] for a deadpool `Manager`.
#[derive(Clone)]
pub struct PgConnector {
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    ssl_mode: SslMode,
    root_cert: Option<PathBuf>,
}

impl fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnector")
            .field("target", &self.target())
            .field("sslmode", &self.ssl_mode)
            .field("sslrootcert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Parses `postgresql://...` or `key=value ...`, reads `sslrootcert`, and sets a
    /// [`DEFAULT_CONNECT_TIMEOUT`] when the URL has no `connect_timeout`. No connection is
    /// made. Errors are [`Error::Invalid`] for `database_url` and never repeat the URL.
    pub fn new(url: &Secret) -> Result<PgConnector, Error> {
        PgConnector::with_connect_timeout(url, DEFAULT_CONNECT_TIMEOUT)
    }

    /// As [`PgConnector::new`], with `default` as the connect timeout when the URL has none.
    pub fn with_connect_timeout(url: &Secret, default: Duration) -> Result<PgConnector, Error> {
        let (rest, ssl) = split_tls_params(url.expose())?;
        let pg: tokio_postgres::Config =
            rest.parse().map_err(|e: tokio_postgres::Error| Error::invalid(FIELD, one_line(&e)))?;
        let ssl_mode = ssl.mode.as_deref().map(SslMode::parse).transpose()?.unwrap_or_default();
        let root_cert = ssl.root_cert.map(PathBuf::from);
        PgConnector::build(pg, ssl_mode, root_cert, default)
    }

    fn build(
        mut pg: tokio_postgres::Config,
        ssl_mode: SslMode,
        root_cert: Option<PathBuf>,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(connect_timeout);
        }
        // libpq: `require` with a root certificate behaves as `verify-ca`.
        let check = match ssl_mode {
            SslMode::Require if root_cert.is_some() => Check::Chain,
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        };
        pg.ssl_mode(match ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });
        let roots = match check {
            Check::Nothing => None,
            _ => Some(Arc::new(load_roots(root_cert.as_deref())?)),
        };
        let tls = MakeRustlsConnect::new(client_config(roots, check == Check::ChainAndName)?);
        Ok(PgConnector { pg, tls, ssl_mode, root_cert })
    }

    /// The driver's configuration (`sslmode` mapped to what the driver knows).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The driver's configuration, to add options, an application name, socket paths.
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }

    /// The TLS connector, for `tokio_postgres::Config::connect` or a deadpool `Manager`.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// The `sslmode` as libpq spells it.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The `sslrootcert` of the URL (a path, or `system`).
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// `host:port/db` for messages, never the password.
    pub fn target(&self) -> String {
        describe(&self.pg)
    }

    /// Opens one session; its connection task is spawned on the current runtime. Failures
    /// are [`Error::Connect`] naming `host:port/db` and the reason (the server's message,
    /// `invalid peer certificate: UnknownIssuer`, ...). The connect timeout bounds the whole
    /// establishment, TLS handshake and authentication included (the driver's covers only
    /// the TCP connect, so a server that accepts and never answers would stall forever).
    pub async fn connect(&self) -> Result<Client, Error> {
        let limit = self.pg.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let failed =
            |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect { target: self.target(), source };
        let (client, conn) = tokio::time::timeout(limit, self.pg.connect(self.tls()))
            .await
            .map_err(|_| failed(format!("no answer within {limit:?} (connect_timeout)").into()))?
            .map_err(|e| failed(Box::new(e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// Parses `url` ([`PgConnector::new`]) and opens one session ([`PgConnector::connect`]).
pub async fn connect(url: &Secret) -> Result<Client, Error> {
    PgConnector::new(url)?.connect().await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The trusted roots: the PEM file `path`, or the system's (`None` or `system`).
fn load_roots(path: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) if path != Path::new("system") => {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| Error::invalid(FIELD, format!("sslrootcert: cannot read {shown}: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| Error::invalid(FIELD, format!("sslrootcert {shown}: {e}")))?;
                roots.add(cert).map_err(|e| Error::invalid(FIELD, format!("sslrootcert {shown}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::invalid(FIELD, format!("sslrootcert {shown}: no certificate in it")));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Error::invalid(
                    FIELD,
                    "the system has no trusted root certificates to verify the server with; set sslrootcert",
                ));
            }
        }
    }
    Ok(roots)
}

fn client_config(roots: Option<Arc<RootCertStore>>, check_name: bool) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Verifier { roots, check_name, algorithms: provider.signature_verification_algorithms };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(FIELD, format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Checks the server's certificate as the `sslmode` asks: nothing, the chain, or the chain
/// and the name. The handshake's signatures are always checked against the certificate.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode` and `sslrootcert` as found in a connection string (last one wins, as in libpq).
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

impl TlsParams {
    /// Takes `key = value` when it is one of ours; false when it is not.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            _ => return false,
        }
        true
    }
}

/// Removes `sslmode` and `sslrootcert` from a URL's query or a `key=value` string (the
/// driver knows `sslmode` only up to `require` and not `sslrootcert`), returning the rest.
fn split_tls_params(s: &str) -> Result<(String, TlsParams), Error> {
    let mut params = TlsParams::default();
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        // The driver reads credentials up to the first '@', the query from the next '?'.
        let after_at = s.find('@').map_or(0, |i| i + 1);
        let Some(q) = s[after_at..].find('?').map(|i| after_at + i) else { return Ok((s.to_owned(), params)) };
        let mut kept = Vec::new();
        for pair in s[q + 1..].split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |v: &str| {
                percent_decode_str(v)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| Error::invalid(FIELD, "a query parameter is not UTF-8 once decoded"))
            };
            if !params.take(&decode(key)?, decode(value)?) {
                kept.push(pair);
            }
        }
        let mut rest = s[..q].to_owned();
        if !kept.is_empty() {
            rest.push('?');
            rest.push_str(&kept.join("&"));
        }
        return Ok((rest, params));
    }
    let mut kept = Vec::new();
    for (key, raw, value) in conninfo_pairs(s)? {
        if !params.take(key, value) {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), params))
}

/// The `key = value` pairs of a conninfo string as libpq (and the driver) read them:
/// each key, its raw text and its unescaped value.
fn conninfo_pairs(s: &str) -> Result<Vec<(&str, &str, String)>, Error> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        while it.next_if(|&(_, c)| !c.is_whitespace() && c != '=').is_some() {}
        let key_end = it.peek().map_or(s.len(), |&(i, _)| i);
        let key = &s[start..key_end];
        skip_ws(&mut it);
        if it.next().map(|(_, c)| c) != Some('=') {
            return Err(Error::invalid(FIELD, format!("expected `=` after `{}`", key.escape_default())));
        }
        skip_ws(&mut it);
        let quoted = it.next_if(|&(_, c)| c == '\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(&(_, c)) = it.peek() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                break;
            }
            it.next();
            if c == '\\' {
                if let Some((_, next)) = it.next() {
                    value.push(next);
                }
            } else {
                value.push(c);
            }
        }
        if quoted {
            closed = it.next_if(|&(_, c)| c == '\'').is_some();
        }
        if !closed {
            return Err(Error::invalid(FIELD, format!("unterminated quoted value of `{}`", key.escape_default())));
        }
        if !quoted && value.is_empty() {
            return Err(Error::invalid(FIELD, format!("no value for `{}`", key.escape_default())));
        }
        let end = it.peek().map_or(s.len(), |&(i, _)| i);
        out.push((key, &s[start..end], value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, TlsParams) {
        split_tls_params(s).unwrap()
    }

    #[test]
    fn url_query_loses_only_the_tls_parameters() {
        let (rest, p) = split(
            "postgresql://u:p%3Fw@db.example:6543/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&options=-c%20a%3Db",
        );
        assert_eq!(rest, "postgresql://u:p%3Fw@db.example:6543/app?application_name=x&options=-c%20a%3Db");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, p) = split("postgres://h/db?sslmode=require");
        assert_eq!((rest.as_str(), p.mode.as_deref(), p.root_cert), ("postgres://h/db", Some("require"), None));
        // A '?' in the password (before the '@') is not the query.
        let (rest, p) = split("postgresql://u:a?sslmode=disable@h/db");
        assert_eq!((rest.as_str(), p), ("postgresql://u:a?sslmode=disable@h/db", TlsParams::default()));
    }

    #[test]
    fn conninfo_loses_only_the_tls_parameters_and_keeps_quoting() {
        let (rest, p) = split(r"host=h  password='it\'s x' sslmode = verify-ca sslrootcert='/a dir/ca.pem' dbname=app");
        assert_eq!(p.mode.as_deref(), Some("verify-ca"));
        assert_eq!(p.root_cert.as_deref(), Some("/a dir/ca.pem"));
        assert_eq!(rest, r"host=h password='it\'s x' dbname=app");
        let e = split_tls_params("host=h password='secret").unwrap_err();
        assert!(!one_line(&e).contains("secret"), "{e}");
        assert_eq!(e.exit_code(), maint_core::ExitCode::BadInput);
    }

    #[test]
    fn conninfo_split_agrees_with_the_driver() {
        let s = r"host=h user=me password='a \'b c' dbname=d\ x";
        let (rest, _) = split(s);
        let a: tokio_postgres::Config = s.parse().unwrap();
        let b: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(a.get_password(), Some(&b"a 'b c"[..]));
        assert_eq!((a.get_password(), a.get_dbname()), (b.get_password(), b.get_dbname()));
        assert_eq!(b.get_dbname(), Some("d x"));
    }

    #[test]
    fn modes_and_defaults() {
        let c = PgConnector::new(&Secret::new("postgresql://u:hunter2@h/db")).unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        assert_eq!(c.config().get_ssl_mode(), DriverSslMode::Prefer);
        assert_eq!(c.config().get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        assert_eq!(c.target(), "h:5432/db");
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = PgConnector::new(&Secret::new("host=h sslmode=disable connect_timeout=3")).unwrap();
        assert_eq!(c.config().get_ssl_mode(), DriverSslMode::Disable);
        assert_eq!(c.config().get_connect_timeout(), Some(&Duration::from_secs(3)));
        let c = PgConnector::new(&Secret::new("postgresql://h/db?sslmode=verify-full&sslrootcert=system"));
        // A machine without system roots says so; one with them gets a `require` driver mode.
        if let Ok(c) = c {
            assert_eq!(c.config().get_ssl_mode(), DriverSslMode::Require);
            assert_eq!(c.root_cert(), Some(Path::new("system")));
        }
    }

    #[test]
    fn bad_tls_parameters_are_named_without_the_url() {
        let msg = |s: &str| {
            let e = PgConnector::new(&Secret::new(s)).unwrap_err();
            assert_eq!(e.exit_code(), maint_core::ExitCode::BadInput);
            let m = one_line(&e);
            assert!(!m.contains("hunter2"), "{m}");
            m
        };
        assert_eq!(
            msg("postgresql://u:hunter2@h/db?sslmode=verify"),
            "database_url: sslmode `verify` is not one of disable, prefer, require, verify-ca, verify-full"
        );
        assert!(msg("postgresql://u:hunter2@h/db?sslmode=allow").contains("sslmode=allow is not supported"));
        let m = msg("postgresql://u:hunter2@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(m.starts_with("database_url: sslrootcert: cannot read /nonexistent/ca.pem: "), "{m}");
        let empty = std::env::temp_dir().join(format!("maint-db-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let m = msg(&format!("host=h password=hunter2 sslmode=verify-full sslrootcert={}", empty.display()));
        assert!(m.ends_with("no certificate in it"), "{m}");
        std::fs::remove_file(&empty).unwrap();
        assert!(msg("postgresql://u:hunter2@h/db?sslcert=/x").contains("unknown option `sslcert`"));
    }
}
