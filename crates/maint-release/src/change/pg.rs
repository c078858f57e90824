//! The PostgreSQL change store: requests, approvals and events in the `maint_change`
//! schema, one `SELECT … FOR UPDATE` transaction per operation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use deadpool_postgres::tokio_postgres::{IsolationLevel, Row, Transaction};

use super::request::person_key;
use super::store::{ChangeOp, check_change_id, id_number};
use crate::error::query_err;
use crate::{Approval, ApprovalPolicy, ChangeEvent, ChangeRequest, ChangeState, ChangeStore, Error, NewChange};

/// The schema of the change tables.
pub const CHANGE_SCHEMA: &str = "maint_change";

/// The advisory lock key under which the tables are created (two first uses at once
/// must not race on `CREATE ... IF NOT EXISTS`): `maintCAB` in ASCII.
pub const CHANGE_SCHEMA_LOCK_KEY: i64 = 0x6d61_696e_7443_4142;

/// The tables, created on the first write (every statement is idempotent).
pub const CHANGE_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS maint_change;
CREATE TABLE IF NOT EXISTS maint_change.change_request (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title              text        NOT NULL,
    description        text        NOT NULL,
    risk               text        NOT NULL CHECK (risk IN ('low', 'medium', 'high', 'critical')),
    impact             text        NOT NULL,
    rollback_plan      text        NOT NULL,
    test_plan          text        NOT NULL,
    requester          text        NOT NULL,
    approvers          text[]      NOT NULL,
    window_name        text,
    estimated_minutes  integer     NOT NULL CHECK (estimated_minutes > 0),
    target_version     text,
    state              text        NOT NULL CHECK (state IN ('pending', 'approved', 'scheduled', 'in_progress',
                                       'completed', 'failed', 'rolled_back', 'rejected', 'cancelled')),
    required_approvals integer     NOT NULL CHECK (required_approvals > 0),
    scheduled_start    timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS maint_change.approval (
    change_id    bigint      NOT NULL REFERENCES maint_change.change_request (id),
    approver     text        NOT NULL,
    approver_key text        NOT NULL,
    approved_at  timestamptz NOT NULL,
    comment      text,
    PRIMARY KEY (change_id, approver_key)
);
CREATE TABLE IF NOT EXISTS maint_change.event (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_id   bigint      NOT NULL REFERENCES maint_change.change_request (id),
    happened_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    from_state  text,
    to_state    text        NOT NULL,
    detail      text
);
CREATE INDEX IF NOT EXISTS event_change_id ON maint_change.event (change_id, id);
ALTER TABLE maint_change.change_request ADD COLUMN IF NOT EXISTS requester_identity text;
ALTER TABLE maint_change.approval ADD COLUMN IF NOT EXISTS identity text;
CREATE UNIQUE INDEX IF NOT EXISTS approval_identity ON maint_change.approval (change_id, identity);
";

/// Whether [`CHANGE_DDL`] has run to its end (its last statement creates this index): then
/// a writer needs no right to create anything, only to read and write the tables.
const CHANGE_DDL_DONE: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = 'maint_change' AND c.relname = 'approval_identity')";

/// A timestamp column read as microseconds since the epoch (exact).
fn micros(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000000)::bigint")
}

/// A bigint parameter of microseconds since the epoch written as a timestamptz (exact).
fn at(param: &str) -> String {
    format!("('epoch'::timestamptz + {param}::bigint * interval '1 microsecond')")
}

fn from_micros(id: &str, n: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(n).ok_or_else(|| Error::change(id, format!("stored time {n} is out of range")))
}

fn parse<T: std::str::FromStr<Err = String>>(id: &str, what: &str, s: &str) -> Result<T, Error> {
    s.parse().map_err(|e| Error::change(id, format!("stored {what}: {e}")))
}

/// [`ChangeStore`] in PostgreSQL, in the schema `maint_change` ([`CHANGE_DDL`], created
/// on the first write under an advisory lock; reads create nothing).
///
/// Who approves is authenticated: each approval records the `session_user` of the
/// connection it came through ([`Approval::identity`]), and the change the one it was
/// created through ([`ChangeRequest::requester_identity`]). An identity approves a change
/// once, and never the change it created ([`ChangeRequest::authenticate_approvals`]),
/// whatever name it gives: give each approver a PostgreSQL role of their own. The unique
/// index `(change_id, identity)` refuses a second approval by one identity in the table
/// itself.
///
/// Ids come from the database (an identity column: `CR-<id>`). Every operation on a
/// change runs in one transaction that starts with `SELECT ... FOR UPDATE` on the change's
/// row: two approvals at the same moment wait for each other and are both counted, and a
/// second approval by the same person, even one sent at the same moment, sees the first
/// and is refused. The approval table's primary key `(change_id, approver_key)` refuses a
/// double approval even from a writer that skipped the lock. Every accepted operation is
/// a row of `maint_change.event` (who, what, when, from which state to which).
#[derive(Debug, Clone)]
pub struct PgChangeStore {
    pool: Pool,
    ready: Arc<AtomicBool>,
}

const COLUMNS: &str = "id, title, description, risk, impact, rollback_plan, test_plan, requester, approvers, \
    window_name, estimated_minutes, target_version, state, required_approvals";

impl PgChangeStore {
    /// A store over `pool`. No I/O happens here.
    pub fn new(pool: Pool) -> Self {
        PgChangeStore { pool, ready: Arc::new(AtomicBool::new(false)) }
    }

    /// A store over a new pool for `url` whose sessions have `timeouts`; a malformed URL
    /// is an [`Error::Invalid`] naming `field` (the message never repeats the URL). No
    /// connection is made here.
    pub fn from_url(url: &str, field: &str, timeouts: &crate::SessionTimeouts) -> Result<Self, Error> {
        Ok(Self::new(crate::pg_pool(url, field, timeouts)?))
    }

    /// A connection for reading: creates nothing (a missing table reads as no changes).
    async fn connection(&self) -> Result<deadpool_postgres::Client, Error> {
        self.pool.get().await.map_err(|e| Error::Connect {
            target: "the change database".into(),
            source: match e {
                deadpool_postgres::PoolError::Backend(e) => Box::new(e),
                other => Box::new(other),
            },
        })
    }

    /// A connection for writing: creates (or brings up to date) the schema and tables on
    /// first use, unless they are current (then it needs no right to create anything).
    async fn client(&self) -> Result<deadpool_postgres::Client, Error> {
        let mut client = self.connection().await?;
        if !self.ready.load(Ordering::Acquire) {
            // Looked up under the lock: a writer that waited for another's DDL must not run
            // it again (its ALTER TABLEs would lock the tables the other one now writes).
            let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_SCHEMA_LOCK_KEY])
                .await
                .map_err(query_err("lock the change schema creation"))?;
            let done: bool =
                tx.query_one(CHANGE_DDL_DONE, &[]).await.map_err(query_err("look up the change tables"))?.get(0);
            if !done {
                tx.batch_execute(CHANGE_DDL).await.map_err(query_err(format!("create the {CHANGE_SCHEMA} tables")))?;
            }
            tx.commit().await.map_err(query_err("COMMIT"))?;
            self.ready.store(true, Ordering::Release);
        }
        Ok(client)
    }

    /// Changes (`rows` of [`COLUMNS`] plus `scheduled_start`, `created_at` in micros)
    /// with their approvals and events, in the order of `rows`.
    async fn with_details(tx: &Transaction<'_>, rows: Vec<Row>) -> Result<Vec<ChangeRequest>, Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let mut approvals: HashMap<i64, Vec<Approval>> = HashMap::new();
        let sql = format!(
            "SELECT change_id, approver, {}, comment, identity FROM maint_change.approval WHERE change_id = ANY($1) \
             ORDER BY approved_at, approver_key",
            micros("approved_at")
        );
        for r in tx.query(&sql, &[&ids]).await.map_err(query_err("read approvals"))? {
            let id: i64 = r.get(0);
            let at = from_micros(&format!("CR-{id}"), r.get(2))?;
            approvals.entry(id).or_default().push(Approval { by: r.get(1), identity: r.get(4), at, comment: r.get(3) });
        }
        let mut events: HashMap<i64, Vec<ChangeEvent>> = HashMap::new();
        let sql = format!(
            "SELECT change_id, {}, actor, action, from_state, to_state, detail FROM maint_change.event \
             WHERE change_id = ANY($1) ORDER BY id",
            micros("happened_at")
        );
        for r in tx.query(&sql, &[&ids]).await.map_err(query_err("read history"))? {
            let id: i64 = r.get(0);
            let cr = format!("CR-{id}");
            let from: Option<String> = r.get(4);
            let to: String = r.get(5);
            events.entry(id).or_default().push(ChangeEvent {
                at: from_micros(&cr, r.get(1))?,
                by: r.get(2),
                action: r.get(3),
                from: from.map(|s| parse(&cr, "state", &s)).transpose()?,
                to: parse(&cr, "state", &to)?,
                detail: r.get(6),
            });
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let n: i64 = r.get(0);
            let id = format!("CR-{n}");
            let risk: String = r.get(3);
            let impact: String = r.get(4);
            let state: String = r.get(12);
            let minutes: i32 = r.get(10);
            let required: i32 = r.get(13);
            let start: Option<i64> = r.get(14);
            out.push(ChangeRequest {
                title: r.get(1),
                description: r.get(2),
                risk: parse(&id, "risk", &risk)?,
                impact: parse(&id, "impact", &impact)?,
                rollback_plan: r.get(5),
                test_plan: r.get(6),
                requester: r.get(7),
                requester_identity: r.get(16),
                approvers: r.get(8),
                window: r.get(9),
                estimated_minutes: u32::try_from(minutes).unwrap_or(1),
                target_version: r.get(11),
                state: parse(&id, "state", &state)?,
                required_approvals: u32::try_from(required).unwrap_or(1),
                approvals: approvals.remove(&n).unwrap_or_default(),
                scheduled_start: start.map(|s| from_micros(&id, s)).transpose()?,
                created_at: from_micros(&id, r.get(15))?,
                history: events.remove(&n).unwrap_or_default(),
                id,
            });
        }
        Ok(out)
    }

    fn select(filter: &str) -> String {
        format!(
            "SELECT {COLUMNS}, {}, {}, requester_identity FROM maint_change.change_request {filter}",
            micros("scheduled_start"),
            micros("created_at")
        )
    }

    async fn read_one(tx: &Transaction<'_>, id: &str, for_update: bool) -> Result<ChangeRequest, Error> {
        let n = id_number(id).ok_or_else(|| Error::ChangeNotFound(id.to_owned()))?;
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let row = tx
            .query_opt(&Self::select(&format!("WHERE id = $1{lock}")), &[&n])
            .await
            .map_err(query_err(format!("read change {id}")))?
            .ok_or_else(|| Error::ChangeNotFound(id.to_owned()))?;
        Self::with_details(tx, vec![row]).await?.pop().ok_or_else(|| Error::ChangeNotFound(id.to_owned()))
    }

    /// Stores `approvals` and `events` of change `n` (the ones an operation appended).
    async fn append(tx: &Transaction<'_>, n: i64, approvals: &[Approval], events: &[ChangeEvent]) -> Result<(), Error> {
        let sql = format!(
            "INSERT INTO maint_change.approval (change_id, approver, approver_key, approved_at, comment, identity) \
             VALUES ($1, $2, $3, {}, $5, $6)",
            at("$4")
        );
        for a in approvals {
            tx.execute(&sql, &[&n, &a.by, &person_key(&a.by), &a.at.timestamp_micros(), &a.comment, &a.identity])
                .await
                .map_err(query_err(format!("record the approval of {}", a.by)))?;
        }
        let sql = format!(
            "INSERT INTO maint_change.event (change_id, happened_at, actor, action, from_state, to_state, detail) \
             VALUES ($1, {}, $3, $4, $5, $6, $7)",
            at("$2")
        );
        for e in events {
            let from = e.from.map(ChangeState::as_str);
            tx.execute(&sql, &[&n, &e.at.timestamp_micros(), &e.by, &e.action, &from, &e.to.as_str(), &e.detail])
                .await
                .map_err(query_err(format!("record the event {}", e.action)))?;
        }
        Ok(())
    }

    /// The authenticated identity of the session: `session_user` (`SET ROLE` does not
    /// change it).
    async fn identity(tx: &Transaction<'_>) -> Result<String, Error> {
        Ok(tx.query_one("SELECT session_user::text", &[]).await.map_err(query_err("read session_user"))?.get(0))
    }

    async fn read_tx(client: &mut deadpool_postgres::Client) -> Result<deadpool_postgres::Transaction<'_>, Error> {
        client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(query_err("BEGIN"))
    }
}

/// Whether `e` is "relation does not exist" (42P01): the change tables were never created.
fn undefined_table(e: &Error) -> bool {
    matches!(e, Error::Query { source, .. }
        if source.code() == Some(&deadpool_postgres::tokio_postgres::error::SqlState::UNDEFINED_TABLE))
}

#[async_trait]
impl ChangeStore for PgChangeStore {
    async fn create(
        &self,
        new: NewChange,
        policy: &ApprovalPolicy,
        now: DateTime<Utc>,
    ) -> Result<ChangeRequest, Error> {
        // Validated before any I/O: bad input is refused even without a database.
        let mut change = ChangeRequest::new("CR-0", new, policy, now)?;
        let minutes = i32::try_from(change.estimated_minutes)
            .map_err(|_| Error::invalid("estimated_minutes", "must be at most 2147483647"))?;
        let required = i32::try_from(change.required_approvals)
            .map_err(|_| Error::invalid("approvals", "must be at most 2147483647"))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
        change.requester_identity = Some(Self::identity(&tx).await?);
        let sql = format!(
            "INSERT INTO maint_change.change_request (title, description, risk, impact, rollback_plan, test_plan, \
             requester, approvers, window_name, estimated_minutes, target_version, state, required_approvals, \
             created_at, requester_identity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {}, $15) \
             RETURNING id",
            at("$14")
        );
        let n: i64 = tx
            .query_one(
                &sql,
                &[
                    &change.title,
                    &change.description,
                    &change.risk.as_str(),
                    &change.impact.to_string(),
                    &change.rollback_plan,
                    &change.test_plan,
                    &change.requester,
                    &change.approvers,
                    &change.window,
                    &minutes,
                    &change.target_version,
                    &change.state.as_str(),
                    &required,
                    &change.created_at.timestamp_micros(),
                    &change.requester_identity,
                ],
            )
            .await
            .map_err(query_err("create the change"))?
            .get(0);
        Self::append(&tx, n, &change.approvals, &change.history).await?;
        let id = format!("CR-{n}");
        let stored = Self::read_one(&tx, &id, false).await?;
        tx.commit().await.map_err(query_err("COMMIT"))?;
        Ok(stored)
    }

    async fn load(&self, id: &str) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        let mut client = self.connection().await?;
        let tx = Self::read_tx(&mut client).await?;
        match Self::read_one(&tx, id, false).await {
            Err(e) if undefined_table(&e) => Err(Error::ChangeNotFound(id.to_owned())),
            other => other,
        }
    }

    async fn update(&self, id: &str, op: &mut ChangeOp<'_>) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        let n = id_number(id).ok_or_else(|| Error::ChangeNotFound(id.to_owned()))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
        let mut change = Self::read_one(&tx, id, true).await?;
        let identity = Self::identity(&tx).await?;
        let (approvals, events) = (change.approvals.clone(), change.history.len());
        let requester_identity = change.requester_identity.clone();
        // A refusal drops the transaction: nothing was written.
        op(&mut change)?;
        if id_number(&change.id) != Some(n)
            || !change.approvals.starts_with(&approvals)
            || change.requester_identity != requester_identity
            || change.history.len() < events
        {
            return Err(Error::change(id, "an operation may only append approvals and events"));
        }
        // The new approvals count under the session's identity, whatever the operation
        // wrote in them.
        change.authenticate_approvals(approvals.len(), &identity)?;
        let approvals = approvals.len();
        let sql = format!(
            "UPDATE maint_change.change_request SET state = $2, \
             scheduled_start = CASE WHEN $3::bigint IS NULL THEN NULL ELSE {} END, updated_at = now() WHERE id = $1",
            at("$3")
        );
        let start = change.scheduled_start.map(|s| s.timestamp_micros());
        tx.execute(&sql, &[&n, &change.state.as_str(), &start]).await.map_err(query_err(format!("update {id}")))?;
        Self::append(&tx, n, &change.approvals[approvals..], &change.history[events..]).await?;
        let stored = Self::read_one(&tx, id, false).await?;
        tx.commit().await.map_err(query_err("COMMIT"))?;
        Ok(stored)
    }

    async fn list(&self) -> Result<Vec<ChangeRequest>, Error> {
        let mut client = self.connection().await?;
        let tx = Self::read_tx(&mut client).await?;
        let rows = match tx.query(&Self::select("ORDER BY id"), &[]).await.map_err(query_err("list changes")) {
            Err(e) if undefined_table(&e) => return Ok(Vec::new()),
            other => other?,
        };
        Self::with_details(&tx, rows).await
    }
}
