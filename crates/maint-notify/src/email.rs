use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use maint_core::Secret;

use crate::{Error, Notification, Notifier};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, upgraded with STARTTLS (required, not opportunistic). Default port 587.
    StartTls,
    /// TLS from the first byte (`smtps://`). Default port 465.
    Tls,
    /// No encryption: only for a relay on the same host or a test server. Default port 25.
    None,
}

/// Email over SMTP (lettre).
#[derive(Debug)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    name: String,
}

/// What an [`Email`] target needs.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Server host.
    pub host: String,
    /// Server port (0 for the TLS mode's default).
    pub port: u16,
    /// Encryption.
    pub tls: SmtpTls,
    /// Login, if the server wants one.
    pub user: Option<String>,
    /// Password for `user`.
    pub password: Option<Secret>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Email {
    /// Checks the addresses and builds the transport (no connection is made yet).
    pub fn new(cfg: &EmailConfig, name: impl Into<String>) -> Result<Self, String> {
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("from address {:?}: {e}", cfg.from))?;
        if cfg.to.is_empty() {
            return Err("no recipient (add ?to=ops@example.com)".into());
        }
        let to = cfg
            .to
            .iter()
            .map(|a| a.parse::<Mailbox>().map_err(|e| format!("recipient {a:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = match cfg.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)),
        }
        .map_err(|e| format!("smtp host {:?}: {e}", cfg.host))?;
        let port = match (cfg.port, cfg.tls) {
            (0, SmtpTls::StartTls) => 587,
            (0, SmtpTls::Tls) => 465,
            (0, SmtpTls::None) => 25,
            (p, _) => p,
        };
        builder = builder.port(port).timeout(Some(cfg.timeout));
        if let (Some(user), Some(pass)) = (&cfg.user, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        Ok(Email { transport: builder.build(), from, to, name: name.into() })
    }
}

#[async_trait]
impl Notifier for Email {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        let resolved = if n.action == crate::Action::Resolve { "RESOLVED " } else { "" };
        let mut msg = Message::builder().from(self.from.clone()).subject(format!(
            "{resolved}[{}] {}",
            n.severity.as_str().to_uppercase(),
            n.title
        ));
        for to in &self.to {
            msg = msg.to(to.clone());
        }
        let msg = msg.body(n.plain_text()).map_err(|e| Error::permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Error::permanent(format!("SMTP: {e}"))),
            Err(e) => Err(Error::retryable(format!("SMTP: {e}"))),
        }
    }
}
