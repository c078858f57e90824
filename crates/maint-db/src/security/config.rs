//! PostgreSQL Security Audit's settings: `[audit]`.

use serde::{Deserialize, Serialize};

/// Security audit settings (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Login roles (other than superusers listed in `allowed_superusers`) must have a
    /// password expiry (`VALID UNTIL`).
    pub require_password_expiry: bool,
    /// Superuser login roles that are expected (reported as info, not warning).
    pub allowed_superusers: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { require_password_expiry: false, allowed_superusers: vec!["postgres".into()] }
    }
}
