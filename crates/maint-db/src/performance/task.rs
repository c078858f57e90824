//! Performance Analysis (`performance-analysis`, weekly, read-only): the task.

use std::sync::Arc;

use async_trait::async_trait;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde_json::json;

use crate::findings::report_findings;
use crate::reindex::vector::{inventory_item, recall_item};
use crate::run::connect;
use crate::{Config, DbBackend, Error, Finding, RelKind, Settings, assess_health, bloat_candidates, recall_finding};

/// The calendar id of the weekly performance analysis.
pub const PERFORMANCE_ANALYSIS_ID: &str = "performance-analysis";

/// The weekly "Performance Analysis" (read-only): connection saturation, long-running
/// and idle-in-transaction sessions, blocked locks, cache hit ratio, XID wraparound age,
/// unused/duplicate/invalid indexes, sequential-scan-heavy tables, replication slots and
/// lag, and the catalog's bloat estimates; each finding with a severity and an action.
#[derive(Debug, Clone)]
pub struct PerformanceAnalysis {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

impl PerformanceAnalysis {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        PerformanceAnalysis { settings, backend }
    }

    /// The index inventory (items, metric `vector_indexes`) and the recall of every valid
    /// vector index (items, history unless a dry run, metric `recall_min`): the recall findings.
    async fn vector_indexes(&self, ctx: &TaskContext, report: &mut TaskReport) -> Vec<Finding> {
        let v = &self.settings.vector;
        let schema = &self.settings.capacity.schema;
        let inventory = match self.backend.index_inventory(schema).await {
            Ok(i) => i,
            Err(e) => {
                report.warn(format!("index inventory: {}", one_line(&e)));
                return Vec::new();
            }
        };
        report.metric("vector_indexes", inventory.iter().filter(|i| i.is_vector()).count() as f64);
        for ix in &inventory {
            report.item(inventory_item(ix));
        }
        let mut findings = Vec::new();
        let mut lowest: Option<f64> = None;
        for ix in inventory.iter().filter(|i| v.recall && i.is_vector() && i.valid) {
            let m = match self.backend.measure_recall(ix, v).await {
                Ok(m) => m,
                Err(e) => {
                    report.warn(format!("recall of {} not measured: {}", ix.qualified(), one_line(&e)));
                    continue;
                }
            };
            let previous = if ctx.dry_run {
                None
            } else {
                self.backend.record_recall(schema, &m).await.unwrap_or_else(|e| {
                    report.warn(format!("recall of {} not recorded: {}", m.index, one_line(&e)));
                    None
                })
            };
            report.item(recall_item(&m, previous));
            if m.queries > 0 {
                lowest = Some(lowest.map_or(m.recall, |l| l.min(m.recall)));
            }
            findings.extend(recall_finding(&m, v, &format!("REINDEX INDEX CONCURRENTLY {}", m.index)));
        }
        if let Some(l) = lowest {
            report.metric("recall_min", l);
        }
        findings
    }

    /// The findings, most severe first.
    pub async fn findings(&self) -> Result<Vec<Finding>, Error> {
        let snapshot = self.backend.health().await?;
        Ok(assess_health(&snapshot, &self.settings.analysis))
    }
}

#[async_trait]
impl Task for PerformanceAnalysis {
    fn name(&self) -> &str {
        PERFORMANCE_ANALYSIS_ID
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(PERFORMANCE_ANALYSIS_ID, ctx.dry_run);
        let snapshot = match self.backend.health().await {
            Ok(s) => s,
            Err(e) => {
                report.fail(one_line(&e));
                return report.finish();
            }
        };
        let figures = snapshot.figures();
        report.metric("connections_used_ratio", figures.connection_ratio);
        report.metric("cache_hit_ratio", figures.cache_hit_ratio);
        report.metric("max_xid_age", figures.max_xid_age as f64);
        let mut findings = assess_health(&snapshot, &self.settings.analysis);
        findings.extend(self.vector_indexes(ctx, &mut report).await);
        Finding::sort(&mut findings);
        report_findings(&mut report, &findings);
        // Bloat from the catalog only: measuring is the index rebuild's job.
        match self.backend.bloat_estimates().await {
            Ok(estimates) => {
                let total: i64 = estimates.iter().map(|e| e.bloat_bytes).sum();
                report.metric("bloat_bytes_estimated", total as f64);
                for e in bloat_candidates(&estimates, self.settings.bloat.measure_top) {
                    let kind = if e.kind == RelKind::Index { "index" } else { "table" };
                    report.item(json!({"step": "bloat", "kind": kind, "relation": e.qualified(),
                        "bytes_estimate": e.bytes, "bloat_bytes_estimate": e.bloat_bytes}));
                }
            }
            Err(e) => {
                report.warn(format!("bloat estimate: {}", one_line(&e)));
            }
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use maint_core::Status;

    use super::*;
    use crate::backend::MockDbBackend;
    use crate::reindex::task::tests::{MB, estimate};

    #[tokio::test]
    async fn the_analysis_reports_findings_and_figures() {
        let mut mock = MockDbBackend::new();
        mock.expect_health().times(1).returning(|| {
            Ok(crate::HealthSnapshot {
                max_connections: 100,
                reserved_connections: 0,
                connections: 85,
                blocks_hit: 90,
                blocks_read: 10,
                ..Default::default()
            })
        });
        mock.expect_bloat_estimates().times(1).returning(|| Ok(vec![estimate("t", RelKind::Table, 10 * MB, MB)]));
        mock.expect_index_inventory().times(1).returning(|_| Ok(Vec::new()));
        let task = PerformanceAnalysis::with_backend(Settings::default(), Arc::new(mock));
        assert_eq!((task.name(), task.impact()), (PERFORMANCE_ANALYSIS_ID, Impact::None));
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Warning);
        assert_eq!(report.metrics["findings_medium"], 1.0);
        let counts: Vec<f64> = crate::Severity::ALL.iter().map(|s| report.metrics[&format!("findings_{s}")]).collect();
        assert_eq!(counts, [0.0, 0.0, 1.0, 0.0, 0.0], "info, low, medium, high, critical");
        assert_eq!(report.metrics["connections_used_ratio"], 0.85);
        assert_eq!(report.metrics["bloat_bytes_estimated"], MB as f64);
        assert!(report.warnings[0].starts_with("medium: connection_saturation max_connections: 85 of 100"));
        assert!(report.items.iter().any(|i| i["step"] == "finding" && i["action"].as_str().is_some()));
    }
}
