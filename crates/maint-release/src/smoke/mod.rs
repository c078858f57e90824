//! Smoke checks of a running AindusDB: declarative suites (`suite`), their `${name}`
//! templating (`template`), the built-in AindusDB suite (`builtin`), the runner
//! (`runner`), its report and JUnit XML (`report`), the Prometheus text a monitoring
//! step reads (`prometheus`), and the checks the update
//! orchestrator runs before and after a rollout (`checks`).

mod builtin;
mod checks;
mod prometheus;
mod report;
mod runner;
mod suite;
mod template;

#[cfg(test)]
pub(crate) use checks::MockHealthChecks;
pub use checks::{CheckResult, HealthChecks, HttpCheck, HttpChecks, SmokeChecks, describe_failures};
pub use report::{SmokePhase, SmokeReport, SmokeStatus, SmokeStepResult, SmokeSummary};
pub use runner::SmokeRunner;
pub use suite::{Assertion, Figure, SmokeStep, SmokeSuite};

/// `field: message` of an [`Error::Invalid`](crate::Error::Invalid), for the tests.
#[cfg(test)]
fn field(e: crate::Error) -> String {
    match e {
        crate::Error::Invalid { field, message } => format!("{field}: {message}"),
        other => panic!("{other}"),
    }
}
