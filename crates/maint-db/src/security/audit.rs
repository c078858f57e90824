//! PostgreSQL Security Audit: what the audit reads (roles, `pg_hba.conf` rules, settings,
//! extensions) and the pure assessment that turns it into findings. No I/O here.

use serde::Serialize;

use crate::{AuditConfig, Finding, Severity, quote_ident};

/// A role (`pg_roles`, without the predefined `pg_*` roles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolcanlogin`.
    pub login: bool,
    /// `rolvaliduntil` as text; `None` when the password never expires.
    pub valid_until: Option<String>,
}

/// A line of `pg_hba.conf` (`pg_hba_file_rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HbaRule {
    /// Line number.
    pub line: i32,
    /// `local`, `host`, `hostssl`...
    pub kind: String,
    /// Databases.
    pub databases: Vec<String>,
    /// Users.
    pub users: Vec<String>,
    /// Address, when any.
    pub address: Option<String>,
    /// `trust`, `scram-sha-256`...
    pub method: String,
}

/// An installed extension and how many objects outside any extension depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionInfo {
    /// `extname`.
    pub name: String,
    /// `extversion`.
    pub version: String,
    /// The schema its objects are in.
    pub schema: String,
    /// Objects that are not members of an extension and depend (`pg_depend`, normal or
    /// automatic) on one of its member objects: a column of its type, an index with its
    /// operator class, a view, default or trigger calling its function.
    pub dependents: i64,
}

/// Extensions maint-db itself calls, and what for.
const USED_BY_MAINT_DB: [(&str, &str); 2] = [
    ("pgstattuple", "the bloat measurement (index-rebuild)"),
    ("amcheck", "the index integrity check (index-integrity)"),
];

/// What the PostgreSQL security audit reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SecuritySnapshot {
    /// Roles.
    pub roles: Vec<RoleInfo>,
    /// `pg_hba_file_rules`; `None` when this role may not read it.
    pub hba: Option<Vec<HbaRule>>,
    /// `password_encryption`.
    pub password_encryption: String,
    /// `ssl`.
    pub ssl: bool,
    /// PUBLIC has CREATE on schema `public`.
    pub public_schema_create: bool,
    /// Installed extensions of this database.
    pub extensions: Vec<ExtensionInfo>,
}

/// Turns a security snapshot into findings, most severe first.
pub fn audit_security(s: &SecuritySnapshot, cfg: &AuditConfig) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    for r in &s.roles {
        let name = format!("role {}", quote_ident(&r.name));
        if r.superuser && r.login {
            let allowed = cfg.allowed_superusers.contains(&r.name);
            out.push(Finding::new(
                "superuser_login",
                if allowed { Info } else { Medium },
                name.clone(),
                format!(
                    "superuser that can log in{}",
                    if allowed { " (allowed by audit.allowed_superusers)" } else { "" }
                ),
                "give applications and people roles with only the privileges they need; ALTER ROLE ... NOSUPERUSER",
            ));
        }
        if cfg.require_password_expiry
            && r.login
            && r.valid_until.is_none()
            && !cfg.allowed_superusers.contains(&r.name)
        {
            out.push(Finding::new(
                "password_expiry",
                Medium,
                name,
                "login role whose password never expires",
                "ALTER ROLE ... VALID UNTIL '<date>' and rotate the password",
            ));
        }
    }
    match &s.hba {
        None => out.push(Finding::new(
            "hba_unreadable",
            Info,
            "pg_hba_file_rules",
            "this role may not read pg_hba_file_rules; trust entries were not checked",
            "run the audit as a superuser, or grant SELECT on pg_hba_file_rules to the maintenance role",
        )),
        Some(rules) => {
            for r in rules.iter().filter(|r| r.method == "trust") {
                let remote = r.kind != "local";
                out.push(Finding::new(
                    "hba_trust",
                    if remote { Critical } else { Medium },
                    format!("pg_hba.conf line {}", r.line),
                    format!(
                        "{} {} {} {} trust: connections without a password",
                        r.kind,
                        r.databases.join(","),
                        r.users.join(","),
                        r.address.as_deref().unwrap_or("")
                    )
                    .replace("  ", " "),
                    "use scram-sha-256 (or peer for local administration) instead of trust",
                ));
            }
        }
    }
    if s.password_encryption != "scram-sha-256" {
        out.push(Finding::new(
            "password_encryption",
            Medium,
            "password_encryption",
            format!("password_encryption = {}", s.password_encryption),
            "set password_encryption = 'scram-sha-256' and reset the passwords",
        ));
    }
    if !s.ssl {
        out.push(Finding::new(
            "ssl_off",
            High,
            "ssl",
            "ssl = off: passwords and data cross the network in clear",
            "configure ssl_cert_file/ssl_key_file, set ssl = on, and use hostssl lines in pg_hba.conf",
        ));
    }
    if s.public_schema_create {
        out.push(Finding::new(
            "public_schema_create",
            Medium,
            "schema \"public\"",
            "PUBLIC may CREATE in schema public (CVE-2018-1058 search_path attacks)",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        ));
    }
    for e in s.extensions.iter().filter(|e| e.name != "plpgsql" && e.dependents == 0) {
        let used = USED_BY_MAINT_DB
            .iter()
            .find(|(n, _)| *n == e.name)
            .map(|(_, what)| format!("; maint-db calls it for {what}"))
            .unwrap_or_default();
        out.push(Finding::new(
            "unused_extension",
            Info,
            format!("extension {}", quote_ident(&e.name)),
            format!(
                "{} {} in schema {}: no object of this database depends on it (queries and function bodies \
                 may still call it: PostgreSQL does not record those){used}",
                e.name,
                e.version,
                quote_ident(&e.schema)
            ),
            "if no application query calls it, DROP EXTENSION it: each installed extension is code that runs \
             in the server and must be kept up to date",
        ));
    }
    Finding::sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::checks;

    #[test]
    fn the_security_audit_names_each_problem() {
        let ext = |name: &str, dependents| ExtensionInfo {
            name: name.into(),
            version: "1.0".into(),
            schema: "public".into(),
            dependents,
        };
        let role = |name: &str, superuser, login, valid: Option<&str>| RoleInfo {
            name: name.into(),
            superuser,
            login,
            valid_until: valid.map(Into::into),
        };
        let s = SecuritySnapshot {
            roles: vec![
                role("postgres", true, true, None),
                role("admin", true, true, None),
                role("app", false, true, Some("2030-01-01")),
                role("report", false, true, None),
                role("group", false, false, None),
            ],
            hba: Some(vec![
                HbaRule {
                    line: 3,
                    kind: "local".into(),
                    databases: vec!["all".into()],
                    users: vec!["all".into()],
                    address: None,
                    method: "trust".into(),
                },
                HbaRule {
                    line: 7,
                    kind: "host".into(),
                    databases: vec!["all".into()],
                    users: vec!["all".into()],
                    address: Some("0.0.0.0/0".into()),
                    method: "trust".into(),
                },
            ]),
            password_encryption: "md5".into(),
            ssl: false,
            public_schema_create: true,
            extensions: vec![ext("plpgsql", 0), ext("hstore", 0), ext("pg_trgm", 2), ext("pgstattuple", 0)],
        };
        let cfg = AuditConfig { require_password_expiry: true, ..AuditConfig::default() };
        let f = audit_security(&s, &cfg);
        assert_eq!(
            checks(&f),
            [
                ("hba_trust", Severity::Critical, "pg_hba.conf line 7"),
                ("ssl_off", Severity::High, "ssl"),
                ("hba_trust", Severity::Medium, "pg_hba.conf line 3"),
                ("password_encryption", Severity::Medium, "password_encryption"),
                ("password_expiry", Severity::Medium, "role \"admin\""),
                ("password_expiry", Severity::Medium, "role \"report\""),
                ("public_schema_create", Severity::Medium, "schema \"public\""),
                ("superuser_login", Severity::Medium, "role \"admin\""),
                ("superuser_login", Severity::Info, "role \"postgres\""),
                ("unused_extension", Severity::Info, "extension \"hstore\""),
                ("unused_extension", Severity::Info, "extension \"pgstattuple\""),
            ]
        );
        let pgstattuple = f.iter().find(|x| x.subject == "extension \"pgstattuple\"").unwrap();
        assert!(pgstattuple.message.contains("maint-db calls it for the bloat measurement"), "{}", pgstattuple.message);
        assert_eq!(f[0].message, "host all all 0.0.0.0/0 trust: connections without a password");
        let clean = SecuritySnapshot {
            roles: vec![role("app", false, true, None)],
            hba: None,
            password_encryption: "scram-sha-256".into(),
            ssl: true,
            public_schema_create: false,
            extensions: vec![ext("plpgsql", 0)],
        };
        assert_eq!(
            checks(&audit_security(&clean, &AuditConfig::default())),
            [("hba_unreadable", Severity::Info, "pg_hba_file_rules")]
        );
    }
}
