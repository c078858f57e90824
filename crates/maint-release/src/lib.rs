#![doc = include_str!("../README.md")]

mod audit;
mod backup;
mod change;
mod config;
mod deploy;
mod docker;
mod error;
mod jsonpath;
mod migration;
mod migrator;
mod smoke;
mod update;
mod version;

#[cfg(test)]
pub(crate) use audit::MockAuditLog;
pub use audit::{AUDIT_TABLE, AuditLog, AuditRecord, PgAuditLog};
#[cfg(test)]
pub(crate) use backup::MockBackupGate;
pub use backup::{BackupGate, StoreBackupGate};
pub use change::{
    Approval, ApprovalPolicy, CHANGE_DDL, CHANGE_SCHEMA, CHANGE_SCHEMA_LOCK_KEY, ChangeEvent, ChangeOp, ChangeRequest,
    ChangeState, ChangeStore, MemoryChangeStore, NewChange, PgChangeStore, Risk, changes_to_icalendar, check_change_id,
};
pub use config::{
    AuditConfig, BackupConfig, ChangesConfig, Config, DatabaseConfig, DiskSpace, DockerConfig, MigrationsConfig,
    SessionTimeouts, SmokeConfig, UpdateConfig, load_toml, pg_pool,
};
#[cfg(test)]
pub(crate) use deploy::MockDeployer;
pub use deploy::{Deployer, Revision, image_tag};
pub use docker::{DockerDeployer, DockerService};
pub use error::Error;
pub use jsonpath::JsonPath;
pub use migration::{
    AppliedMigration, Migration, MigrationPlan, MigrationVersion, Phase, load_dir, plan_migrations, sha256_hex,
    split_statements,
};
#[cfg(test)]
pub(crate) use migrator::MockSchemaMigrations;
pub use migrator::{AppliedStep, MIGRATION_LOCK_KEY, MigrationOutcome, Migrator, MigratorOptions, SchemaMigrations};
#[cfg(test)]
pub(crate) use smoke::MockHealthChecks;
pub use smoke::{
    Assertion, CheckResult, Figure, HealthChecks, HttpCheck, HttpChecks, SmokeChecks, SmokePhase, SmokeReport,
    SmokeRunner, SmokeStatus, SmokeStep, SmokeStepResult, SmokeSuite, SmokeSummary, describe_failures,
};
pub use update::{DiskCheck, Step, StepRecord, StepStatus, UPDATE_TASK_ID, UpdateRequest, UpdateSettings, Updater};
pub use version::{UpdateKind, VersionDecision, VersionPolicy, check_update, classify, parse_version};

/// Re-exported because [`DockerDeployer::new`] takes its client.
pub use bollard;
/// Re-exported because [`Migrator`] is built on its pool.
pub use deadpool_postgres;
/// Re-exported because [`StoreBackupGate`] is built on it.
pub use maint_backup;
/// Re-exported because [`Updater`] notifies through it.
pub use maint_notify;
/// Re-exported because versions in the API are `semver::Version`s.
pub use semver;
