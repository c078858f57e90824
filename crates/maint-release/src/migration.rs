//! SQL migration files: `V<version>__<name>.sql`, their directives (expand, contract,
//! no-transaction), checksums, statement splitting, and the plan against what is applied.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// When a migration runs relative to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Backward compatible (add a column, a table, an index): runs BEFORE the new image,
    /// so old pods keep working on the new schema. The default.
    #[default]
    Expand,
    /// Removes what only the old code needed (drop a column): runs AFTER the new image
    /// is healthy everywhere.
    Contract,
}

impl Phase {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::Contract => "contract",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration version: dot- or underscore-separated numbers (`3`, `1.2`, `2_1`),
/// compared number by number (`1.10` after `1.9`); `1.0` and `1` are the same version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MigrationVersion {
    parts: Vec<u64>,
}

impl MigrationVersion {
    /// Parses `3`, `1.2` or `2_1`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts: Vec<u64> = text.split(['.', '_']).map(|p| p.parse().ok()).collect::<Option<_>>()?;
        // `1.0` is `1`: trailing zeros are dropped so that equal versions have one spelling.
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(MigrationVersion { parts })
    }
}

impl Ord for MigrationVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        let at = |v: &Self, i: usize| v.parts.get(i).copied().unwrap_or(0);
        (0..n).map(|i| at(self, i).cmp(&at(other, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for MigrationVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for MigrationVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.parts.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))
    }
}

/// One SQL migration file: `V<version>__<name>.sql`.
///
/// Directives are comment lines at the top of the file, before any SQL:
/// `-- maint:contract` (default `-- maint:expand`) and `-- maint:no-transaction` (for
/// statements that cannot run in a transaction, such as `CREATE INDEX CONCURRENTLY`; the
/// file then runs statement by statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The version.
    pub version: MigrationVersion,
    /// The name (`add_users_email`).
    pub name: String,
    /// The file name.
    pub file: String,
    /// Expand or contract.
    pub phase: Phase,
    /// Whether it runs in one transaction.
    pub transactional: bool,
    /// The SQL.
    pub sql: String,
    /// Hex SHA-256 of the file's bytes.
    pub checksum: String,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Migration {
    /// Parses a migration from its file name and content. Returns `Ok(None)` for a file
    /// that is not a migration (does not start with `V` or end with `.sql`).
    pub fn parse(file: &str, content: &str) -> Result<Option<Migration>, Error> {
        let bad = |m: &str| Error::MigrationFile { file: file.to_owned(), message: m.to_owned() };
        let Some(stem) = file.strip_prefix('V').and_then(|f| f.strip_suffix(".sql")) else { return Ok(None) };
        let (version, name) = stem.split_once("__").ok_or_else(|| bad("expected V<version>__<name>.sql"))?;
        let version = MigrationVersion::parse(version)
            .ok_or_else(|| bad(&format!("version {version:?} is not numbers separated by . or _")))?;
        if name.is_empty() {
            return Err(bad("the name after __ is empty"));
        }
        let (mut phase, mut transactional) = (None, true);
        for line in content.lines().map(str::trim) {
            if line.is_empty() {
                continue;
            }
            let Some(comment) = line.strip_prefix("--") else { break };
            let Some(directive) = comment.trim().strip_prefix("maint:") else { continue };
            match directive.trim() {
                "expand" | "contract" if phase.is_some() => return Err(bad("more than one phase directive")),
                "expand" => phase = Some(Phase::Expand),
                "contract" => phase = Some(Phase::Contract),
                "no-transaction" => transactional = false,
                other => {
                    return Err(bad(&format!(
                        "unknown directive maint:{other} (expected expand, contract or no-transaction)"
                    )));
                }
            }
        }
        if split_statements(content).is_empty() {
            return Err(bad("no SQL statement"));
        }
        Ok(Some(Migration {
            version,
            name: name.to_owned(),
            file: file.to_owned(),
            phase: phase.unwrap_or_default(),
            transactional,
            sql: content.to_owned(),
            checksum: sha256_hex(content.as_bytes()),
        }))
    }

    /// The version as text, as stored in the history table.
    pub fn version_text(&self) -> String {
        self.version.to_string()
    }
}

/// Reads every `V*.sql` file of a directory, sorted by version; two files with the same
/// version are an error.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, Error> {
    let io = |operation, source| Error::Io { operation, path: dir.to_owned(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("cannot read directory", e))? {
        let entry = entry.map_err(|e| io("cannot read directory", e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.starts_with('V') || !file.ends_with(".sql") {
            continue;
        }
        let path = entry.path();
        let content = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            operation: "cannot read",
            path: path.clone(),
            source,
        })?;
        if let Some(m) = Migration::parse(&file, &content)? {
            out.push(m);
        }
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    if let Some(w) = out.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::MigrationFile {
            file: w[1].file.clone(),
            message: format!("version {} is also used by {}", w[1].version, w[0].file),
        });
    }
    Ok(out)
}

/// A row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    /// Version as text (`1.2`).
    pub version: String,
    /// Name.
    pub name: String,
    /// Phase it ran in.
    pub phase: Phase,
    /// Hex SHA-256 of the file when it was applied.
    pub checksum: String,
}

/// What a run would do for one phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationPlan {
    /// Pending migrations of the phase, in version order.
    pub pending: Vec<Migration>,
    /// Applied versions with no file any more (worth a warning, not an error).
    pub missing_files: Vec<String>,
    /// Pending migrations of the other phase (they wait for their turn).
    pub other_phase_pending: usize,
}

/// Compares files with the history: refuses any applied migration whose file changed,
/// and lists what `phase` has left to apply. Pure.
pub fn plan_migrations(
    files: &[Migration],
    applied: &[AppliedMigration],
    phase: Phase,
) -> Result<MigrationPlan, Error> {
    let mut plan = MigrationPlan::default();
    for a in applied {
        let found = MigrationVersion::parse(&a.version).and_then(|v| files.iter().find(|f| f.version == v));
        match found {
            Some(f) if f.checksum != a.checksum => {
                return Err(Error::ChecksumMismatch {
                    version: a.version.clone(),
                    name: a.name.clone(),
                    applied: a.checksum.clone(),
                    found: f.checksum.clone(),
                });
            }
            Some(_) => {}
            None => plan.missing_files.push(format!("V{}__{}", a.version, a.name)),
        }
    }
    for f in files {
        let done = applied.iter().any(|a| MigrationVersion::parse(&a.version).as_ref() == Some(&f.version));
        if done {
            continue;
        }
        if f.phase == phase {
            plan.pending.push(f.clone());
        } else {
            plan.other_phase_pending += 1;
        }
    }
    Ok(plan)
}

/// Splits SQL into statements at `;`, outside quotes (`'...'`, `"..."`), dollar quotes
/// (`$$...$$`, `$tag$...$tag$`) and comments (`-- ...`, `/* ... */`). Statements that are
/// only whitespace or comments are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0usize, 0usize);
    let mut has_code = false;
    let mut push = |from: usize, to: usize, has_code: &mut bool| {
        if *has_code {
            out.push(sql[from..to].trim().to_owned());
        }
        *has_code = false;
    };
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            q @ (b'\'' | b'"') => {
                has_code = true;
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                has_code = true;
                let tag_end = sql[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n)
                    .filter(|&e| b[e] == b'$');
                match tag_end {
                    Some(e) => {
                        let tag = &sql[i..=e];
                        i = sql[e + 1..].find(tag).map_or(b.len(), |n| e + 1 + n + tag.len());
                    }
                    None => i += 1,
                }
            }
            b';' => {
                push(start, i, &mut has_code);
                i += 1;
                start = i;
            }
            c => {
                if !c.is_ascii_whitespace() {
                    has_code = true;
                }
                i += 1;
            }
        }
    }
    push(start, b.len().min(sql.len()), &mut has_code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(file: &str, sql: &str) -> Migration {
        Migration::parse(file, sql).unwrap().unwrap()
    }

    #[test]
    fn parses_names_versions_and_directives() {
        let a = m("V1_2__add_email.sql", "-- adds a column\n-- maint:expand\nALTER TABLE users ADD email text;");
        assert_eq!(
            (a.version.to_string(), a.name.as_str(), a.phase, a.transactional),
            ("1.2".into(), "add_email", Phase::Expand, true)
        );
        let b =
            m("V3__idx.sql", "-- maint:no-transaction\n-- maint: contract\n\nCREATE INDEX CONCURRENTLY i ON t (c);");
        assert_eq!((b.phase, b.transactional), (Phase::Contract, false));
        let late = m("V4__late.sql", "SELECT 1;\n-- maint:contract\n");
        assert_eq!(late.phase, Phase::Expand, "directives count only before the first statement");
        assert_eq!(Migration::parse("README.md", "").unwrap(), None);
        let err = |file: &str, sql: &str| Migration::parse(file, sql).unwrap_err().to_string();
        assert_eq!(err("V1_add.sql", "SELECT 1"), "migration V1_add.sql: expected V<version>__<name>.sql");
        assert!(err("Vx__a.sql", "SELECT 1").contains("version \"x\" is not numbers"));
        assert!(err("V1__a.sql", "-- maint:sometimes\nSELECT 1").contains("unknown directive maint:sometimes"));
        assert!(err("V1__a.sql", "-- maint:expand\n-- maint:contract\nSELECT 1").contains("more than one phase"));
        assert!(err("V1__a.sql", "-- nothing\n").contains("no SQL statement"));
        assert_eq!(a.checksum.len(), 64);
    }

    #[test]
    fn versions_compare_as_numbers() {
        let v = |s| MigrationVersion::parse(s).unwrap();
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.9.9"));
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1_0_0").to_string(), "1");
        assert_eq!(v("1_2").to_string(), "1.2");
        assert_eq!(MigrationVersion::parse("1..2"), None);
    }

    #[test]
    fn plan_refuses_a_changed_file_and_splits_by_phase() {
        let files = vec![
            m("V1__a.sql", "CREATE TABLE a (id int);"),
            m("V2__b.sql", "-- maint:contract\nDROP TABLE old;"),
            m("V3__c.sql", "CREATE TABLE c (id int);"),
        ];
        let applied = |sum: &str| AppliedMigration {
            version: "1".into(),
            name: "a".into(),
            phase: Phase::Expand,
            checksum: sum.to_owned(),
        };
        let plan = plan_migrations(&files, &[applied(&files[0].checksum)], Phase::Expand).unwrap();
        assert_eq!(plan.pending.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(), ["V3__c.sql"]);
        assert_eq!(plan.other_phase_pending, 1);
        let contract = plan_migrations(&files, &[applied(&files[0].checksum)], Phase::Contract).unwrap();
        assert_eq!(contract.pending[0].file, "V2__b.sql");
        let err = plan_migrations(&files, &[applied("0000")], Phase::Expand).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { ref version, .. } if version == "1"), "{err}");
        let gone =
            AppliedMigration { version: "0.5".into(), name: "gone".into(), phase: Phase::Expand, checksum: "x".into() };
        let plan = plan_migrations(&files, &[gone], Phase::Expand).unwrap();
        assert_eq!(plan.missing_files, ["V0.5__gone"]);
        assert_eq!(plan.pending.len(), 2);
    }

    #[test]
    fn splits_statements_outside_quotes_dollar_quotes_and_comments() {
        let sql = "-- head; comment\nCREATE TABLE t (s text DEFAULT 'a;b', \"we;ird\" int);\n\
                   /* block; */ CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   INSERT INTO t VALUES ('it''s;'); DO $$ BEGIN PERFORM 1; END $$\n-- trailing;";
        let s = split_statements(sql);
        assert_eq!(s.len(), 4, "{s:#?}");
        assert!(s[0].ends_with("\"we;ird\" int)"));
        assert!(s[1].contains("$body$ SELECT 1; $body$"));
        assert_eq!(s[2], "INSERT INTO t VALUES ('it''s;')");
        assert_eq!(s[3], "DO $$ BEGIN PERFORM 1; END $$\n-- trailing;");
        assert!(split_statements("  -- only a comment;\n /* x; */ ;").is_empty());
        assert_eq!(split_statements("SELECT $1"), ["SELECT $1"]);
    }
}
