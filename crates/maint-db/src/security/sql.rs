//! PostgreSQL Security Audit's SQL: roles, `pg_hba_file_rules`, security settings and
//! extensions with their dependents. Serves [`DbBackend::security`](crate::DbBackend::security).

use crate::db::query_err;
use crate::{Error, ExtensionInfo, HbaRule, PgBackend, RoleInfo, SecuritySnapshot};

/// SQLSTATE of "insufficient privilege".
const INSUFFICIENT_PRIVILEGE: &str = "42501";

impl PgBackend {
    pub(crate) async fn security(&self) -> Result<SecuritySnapshot, Error> {
        let client = self.db.client().await?;
        let roles = client
            .query(
                "SELECT rolname::text, rolsuper, rolcanlogin, \
                   CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil = 'infinity' THEN NULL ELSE rolvaliduntil::text END \
                 FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
                &[],
            )
            .await
            .map_err(query_err("read pg_roles"))?;
        let hba = match client
            .query(
                "SELECT line_number, coalesce(type, ''), coalesce(database, '{}'), coalesce(user_name, '{}'), address, \
                   coalesce(auth_method, '') \
                 FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number",
                &[],
            )
            .await
        {
            Ok(rows) => Some(
                rows.iter()
                    .map(|r| HbaRule {
                        line: r.get(0),
                        kind: r.get(1),
                        databases: r.get(2),
                        users: r.get(3),
                        address: r.get(4),
                        method: r.get(5),
                    })
                    .collect(),
            ),
            Err(e) if e.code().map(|c| c.code()) == Some(INSUFFICIENT_PRIVILEGE) => None,
            Err(e) => return Err(query_err("read pg_hba_file_rules")(e)),
        };
        let row = client
            .query_one(
                "SELECT current_setting('password_encryption'), current_setting('ssl') = 'on', \
                   CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') \
                        THEN has_schema_privilege('public', 'public', 'CREATE') ELSE false END",
                &[],
            )
            .await
            .map_err(query_err("read security settings"))?;
        // Extensions, and the user objects outside any extension (tables and their columns,
        // indexes, views, defaults, constraints, triggers, functions, types, policies) that
        // depend on one of their members ('e' links a member to its extension). Operator
        // family entries (pg_amop, pg_amproc) are the extension's own plumbing: not counted.
        let extensions = client
            .query(
                "SELECT e.extname::text, e.extversion, n.nspname::text, \
                   (SELECT count(DISTINCT (u.classid, u.objid)) FROM pg_depend m \
                    JOIN pg_depend u ON u.refclassid = m.classid AND u.refobjid = m.objid AND u.deptype IN ('n', 'a') \
                      AND u.classid IN ('pg_class'::regclass, 'pg_rewrite'::regclass, 'pg_attrdef'::regclass, \
                        'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass, \
                        'pg_policy'::regclass) \
                    WHERE m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid AND m.deptype = 'e' \
                      AND NOT EXISTS (SELECT 1 FROM pg_depend x \
                        WHERE x.classid = u.classid AND x.objid = u.objid AND x.deptype = 'e')) \
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
                &[],
            )
            .await
            .map_err(query_err("read pg_extension"))?;
        Ok(SecuritySnapshot {
            extensions: extensions
                .iter()
                .map(|r| ExtensionInfo { name: r.get(0), version: r.get(1), schema: r.get(2), dependents: r.get(3) })
                .collect(),
            roles: roles
                .iter()
                .map(|r| RoleInfo { name: r.get(0), superuser: r.get(1), login: r.get(2), valid_until: r.get(3) })
                .collect(),
            hba,
            password_encryption: row.get(0),
            ssl: row.get(1),
            public_schema_create: row.get(2),
        })
    }
}
