//! Change management (CAB): the change request and its life ([`ChangeRequest`], in
//! `request`), where requests are stored ([`ChangeStore`], in `store`, with an in-memory
//! store) and the PostgreSQL store ([`PgChangeStore`], in `pg`).

mod pg;
mod request;
mod store;

pub use pg::{CHANGE_DDL, CHANGE_SCHEMA, CHANGE_SCHEMA_LOCK_KEY, PgChangeStore};
pub use request::{
    Approval, ApprovalPolicy, ChangeEvent, ChangeRequest, ChangeState, NewChange, Risk, changes_to_icalendar,
};
pub use store::{ChangeOp, ChangeStore, MemoryChangeStore, check_change_id};
