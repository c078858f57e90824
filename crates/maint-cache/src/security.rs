use crate::Error;
use crate::backend::{CacheBackend, SecurityFacts};

pub use maint_core::{Finding, Severity};

fn is_loopback(addr: &str) -> bool {
    matches!(addr.trim_start_matches('-'), "127.0.0.1" | "::1" | "localhost")
}

/// Judges what was read from a server. Pure: unit-tested on hand-written facts.
pub fn assess(f: &SecurityFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |check: String, severity, message: String, action: &str| {
        out.push(Finding::new(check, severity, f.node.clone(), message, action));
    };
    let public_bind = f.bind.as_ref().map(|b| b.is_empty() || b.iter().any(|a| !is_loopback(a)));
    let nopass = f.default_user_enabled == Some(true) && f.default_user_nopass == Some(true);
    let bind_text = f.bind.as_ref().map(|b| b.join(" ")).unwrap_or_else(|| "?".into());

    match (f.default_user_enabled, f.default_user_nopass) {
        (Some(true), Some(true)) => {
            let critical = f.protected_mode == Some(false) && public_bind == Some(true);
            add(
                "default-user-nopass".into(),
                if critical { Severity::Critical } else { Severity::High },
                format!(
                    "the default user is enabled without a password{}",
                    if critical {
                        format!(
                            " and protected-mode is off on bind {bind_text}: anyone who reaches the port can run any command"
                        )
                    } else {
                        String::new()
                    }
                ),
                "set requirepass or disable the default user in the ACL",
            );
        }
        (None, _) | (_, None) => add(
            "default-user-unknown".into(),
            Severity::Info,
            "could not read the default user (ACL GETUSER not permitted)".into(),
            "check it by hand",
        ),
        _ => {}
    }
    match (f.protected_mode, public_bind) {
        (Some(false), Some(true)) => add(
            "protected-mode-off".into(),
            if nopass { Severity::High } else { Severity::Medium },
            format!("protected-mode is off while listening on {bind_text}"),
            "turn it on or bind to private addresses",
        ),
        (None, _) | (_, None) => add(
            "config-unreadable".into(),
            Severity::Info,
            "could not read protected-mode/bind (CONFIG renamed or not permitted)".into(),
            "check them by hand",
        ),
        _ => {}
    }
    for c in &f.commands {
        let id = format!("dangerous-command-{}", c.command.to_ascii_lowercase());
        match (c.present, c.default_user_allowed) {
            (true, Some(true)) => add(
                id,
                if nopass { Severity::High } else { Severity::Medium },
                format!("{} is neither renamed nor denied to the default user", c.command),
                &format!("restrict it with ACL (-{})", c.command.to_ascii_lowercase()),
            ),
            (true, None) => add(
                id,
                Severity::Info,
                format!("{} is not renamed and its ACL could not be checked (ACL DRYRUN not permitted)", c.command),
                "check it by hand",
            ),
            _ => {}
        }
    }
    if f.tls == Some(false) {
        add(
            "tls-off".into(),
            if public_bind == Some(false) { Severity::Low } else { Severity::Medium },
            "TLS is off (tls-port 0): passwords and data cross the network in clear".into(),
            "serve TLS (tls-port) and connect with rediss://",
        );
    }
    Finding::sort(&mut out);
    out
}

/// Reads the settings of one node and judges them (the weekly security scan uses this).
pub async fn check_security(backend: &dyn CacheBackend) -> Result<Vec<Finding>, Error> {
    Ok(assess(&backend.security_facts().await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CommandExposure, MockCacheBackend};

    fn cmd(name: &str, present: bool, allowed: Option<bool>) -> CommandExposure {
        CommandExposure { command: name.into(), present, default_user_allowed: allowed }
    }

    fn open_server() -> SecurityFacts {
        SecurityFacts {
            node: "10.0.0.5:6379/0".into(),
            default_user_enabled: Some(true),
            default_user_nopass: Some(true),
            protected_mode: Some(false),
            bind: Some(vec!["0.0.0.0".into()]),
            tls: Some(false),
            commands: vec![
                cmd("FLUSHALL", true, Some(true)),
                cmd("CONFIG", true, Some(true)),
                cmd("DEBUG", false, Some(false)),
            ],
        }
    }

    fn ids(f: &[Finding]) -> Vec<(String, Severity)> {
        f.iter().map(|f| (f.check.clone(), f.severity)).collect()
    }

    #[test]
    fn an_open_server_is_critical() {
        assert_eq!(
            ids(&assess(&open_server())),
            vec![
                ("default-user-nopass".into(), Severity::Critical),
                ("dangerous-command-config".into(), Severity::High),
                ("dangerous-command-flushall".into(), Severity::High),
                ("protected-mode-off".into(), Severity::High),
                ("tls-off".into(), Severity::Medium),
            ]
        );
    }

    #[test]
    fn a_hardened_server_has_no_findings_and_unknowns_are_info() {
        let hardened = SecurityFacts {
            default_user_nopass: Some(false),
            protected_mode: Some(true),
            bind: Some(vec!["127.0.0.1".into(), "-::1".into()]),
            tls: Some(true),
            commands: vec![cmd("FLUSHALL", true, Some(false)), cmd("CONFIG", false, Some(false))],
            ..open_server()
        };
        assert_eq!(assess(&hardened), vec![]);
        let unknown = SecurityFacts {
            default_user_enabled: None,
            default_user_nopass: None,
            protected_mode: None,
            bind: None,
            tls: None,
            commands: vec![cmd("DEBUG", true, None)],
            ..open_server()
        };
        assert!(assess(&unknown).iter().all(|f| f.severity == Severity::Info), "{:?}", assess(&unknown));
        assert_eq!(assess(&unknown).len(), 3);
    }

    #[tokio::test]
    async fn check_security_reads_the_backend() {
        let mut mock = MockCacheBackend::new();
        mock.expect_security_facts().times(1).returning(|| Ok(open_server()));
        let findings = check_security(&mock).await.unwrap();
        assert_eq!(findings[0].severity, Severity::Critical);
        assert!(findings[0].message.contains("0.0.0.0"));
    }
}
