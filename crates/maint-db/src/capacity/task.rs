//! Capacity Planning (`capacity-planning`, monthly): size samples, the growth forecast and
//! the task that records and reports them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde::Serialize;
use serde_json::json;

use crate::run::connect;
use crate::{Config, DbBackend, Error, Settings};

/// The calendar id of the monthly capacity planning.
pub const CAPACITY_PLANNING_ID: &str = "capacity-planning";

/// What a size sample is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeKind {
    /// The whole database (`pg_database_size`).
    Database,
    /// A table with its TOAST, free space and visibility maps (`pg_table_size`).
    Table,
    /// An index (`pg_relation_size`).
    Index,
}

impl SizeKind {
    /// The name stored in the snapshots table.
    pub fn as_str(self) -> &'static str {
        match self {
            SizeKind::Database => "database",
            SizeKind::Table => "table",
            SizeKind::Index => "index",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<SizeKind> {
        [SizeKind::Database, SizeKind::Table, SizeKind::Index].into_iter().find(|k| k.as_str() == s)
    }
}

/// One size at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeSample {
    /// What.
    pub kind: SizeKind,
    /// The database name, or the quoted `schema.relation`.
    pub name: String,
    /// Bytes.
    pub bytes: i64,
    /// When, in seconds since the Unix epoch (server clock).
    pub at: f64,
    /// `bytes` is the `relpages` estimate (as of the last VACUUM or ANALYZE): the relation
    /// was locked ACCESS EXCLUSIVE, so its size could not be read without waiting.
    pub estimated: bool,
}

/// Growth of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// The latest size.
    pub bytes: i64,
    /// Least-squares growth in bytes per day; `None` with less than two samples an hour apart.
    pub growth_per_day: Option<f64>,
    /// Days until `budget` at that growth: 0 when already over, `None` when there is no
    /// budget or the series does not grow.
    pub days_until_budget: Option<f64>,
}

/// Fits a line through `(at, bytes)` samples (any order) and projects it to `budget`.
pub fn forecast(samples: &[(f64, i64)], budget: Option<i64>) -> Option<Forecast> {
    let latest = samples.iter().copied().max_by(|a, b| a.0.total_cmp(&b.0))?;
    let n = samples.len() as f64;
    let (min_t, max_t) = samples.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (t, _)| (lo.min(*t), hi.max(*t)));
    let growth_per_day = (samples.len() >= 2 && max_t - min_t >= 3600.0).then(|| {
        let mt = samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mb = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        let cov: f64 = samples.iter().map(|s| (s.0 - mt) * (s.1 as f64 - mb)).sum();
        let var: f64 = samples.iter().map(|s| (s.0 - mt).powi(2)).sum();
        cov / var * 86_400.0
    });
    let days_until_budget = match (budget, growth_per_day) {
        (Some(b), _) if latest.1 >= b => Some(0.0),
        (Some(b), Some(g)) if g > 0.0 => Some((b - latest.1) as f64 / g),
        _ => None,
    };
    Some(Forecast { bytes: latest.1, growth_per_day, days_until_budget })
}

/// The monthly "Capacity Planning" (impact none): records the sizes of the database and
/// of its largest tables and indexes in `<capacity.schema>.size_snapshots` (created on
/// first use), fits the growth per day over `capacity.window`, and says how many days
/// remain until `capacity.disk_budget`. A dry run records nothing.
#[derive(Debug, Clone)]
pub struct CapacityPlanning {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

impl CapacityPlanning {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        CapacityPlanning { settings, backend }
    }

    async fn steps(&self, ctx: &TaskContext, report: &mut TaskReport) -> Result<(), Error> {
        let c = &self.settings.capacity;
        let current = self.backend.current_sizes(c.top).await?;
        if !ctx.dry_run {
            self.backend.record_sizes(&c.schema, &current, c.keep).await?;
        }
        let mut history = self.backend.size_history(&c.schema, c.window).await?;
        if ctx.dry_run {
            history.extend(current.iter().cloned());
        }
        let mut series: BTreeMap<(SizeKind, String), Vec<(f64, i64)>> = BTreeMap::new();
        for s in history {
            series.entry((s.kind, s.name)).or_default().push((s.at, s.bytes));
        }
        for sample in &current {
            let points = series.get(&(sample.kind, sample.name.clone())).cloned().unwrap_or_default();
            let budget = if sample.kind == SizeKind::Database { c.disk_budget } else { None };
            let Some(f) = forecast(&points, budget) else { continue };
            report.item(json!({"step": "capacity", "kind": sample.kind, "name": sample.name, "bytes": f.bytes,
                "estimated": sample.estimated, "samples": points.len(), "growth_bytes_per_day": f.growth_per_day,
                "days_until_budget": f.days_until_budget}));
            if sample.kind != SizeKind::Database {
                continue;
            }
            report.metric("db_bytes", f.bytes as f64);
            if let Some(g) = f.growth_per_day {
                report.metric("db_growth_bytes_per_day", g);
            }
            if let Some(b) = c.disk_budget {
                report.metric("disk_budget_bytes", b as f64);
            }
            if let Some(d) = f.days_until_budget {
                report.metric("days_until_budget", d);
                if d < f64::from(c.warn_days) {
                    report.warn(format!(
                        "database {} reaches its disk budget of {} bytes in {d:.0} days at {:.0} bytes/day",
                        sample.name,
                        c.disk_budget.unwrap_or_default(),
                        f.growth_per_day.unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Task for CapacityPlanning {
    fn name(&self) -> &str {
        CAPACITY_PLANNING_ID
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(CAPACITY_PLANNING_ID, ctx.dry_run);
        if let Err(e) = self.steps(ctx, &mut report).await {
            report.fail(one_line(&e));
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use maint_core::Status;

    use super::*;
    use crate::backend::MockDbBackend;

    const DAY: f64 = 86_400.0;

    #[test]
    fn growth_is_the_least_squares_slope_and_projects_to_the_budget() {
        let s = [(0.0, 1000), (DAY, 2000), (2.0 * DAY, 3000)];
        let f = forecast(&s, Some(10_000)).unwrap();
        assert_eq!(f.bytes, 3000);
        assert!((f.growth_per_day.unwrap() - 1000.0).abs() < 1e-6);
        assert!((f.days_until_budget.unwrap() - 7.0).abs() < 1e-6);
        // Order does not matter; noise is averaged.
        let noisy = [(2.0 * DAY, 3100), (0.0, 900), (DAY, 2000)];
        assert!((forecast(&noisy, None).unwrap().growth_per_day.unwrap() - 1100.0).abs() < 1e-6);
    }

    #[test]
    fn no_growth_without_history_and_no_date_when_shrinking() {
        assert_eq!(forecast(&[], Some(1)), None);
        let one = forecast(&[(0.0, 500)], Some(1000)).unwrap();
        assert_eq!((one.growth_per_day, one.days_until_budget), (None, None));
        let close = forecast(&[(0.0, 500), (60.0, 600)], Some(1000)).unwrap();
        assert_eq!(close.growth_per_day, None, "a minute apart is not a trend");
        let shrinking = forecast(&[(0.0, 900), (DAY, 800)], Some(1000)).unwrap();
        assert_eq!(shrinking.days_until_budget, None);
        let over = forecast(&[(0.0, 900), (DAY, 1200)], Some(1000)).unwrap();
        assert_eq!(over.days_until_budget, Some(0.0));
    }

    #[tokio::test]
    async fn a_dry_run_records_nothing_and_warns_when_the_budget_is_near() {
        let mut settings = Settings::default();
        settings.capacity.disk_budget = Some(10_000);
        let mut mock = MockDbBackend::new();
        mock.expect_current_sizes().withf(|top| *top == 10).times(1).returning(|_| {
            Ok(vec![
                SizeSample {
                    kind: SizeKind::Database,
                    name: "app".into(),
                    bytes: 3000,
                    at: 2.0 * DAY,
                    estimated: false,
                },
                SizeSample {
                    kind: SizeKind::Table,
                    name: "\"public\".\"t\"".into(),
                    bytes: 100,
                    at: 2.0 * DAY,
                    estimated: false,
                },
            ])
        });
        mock.expect_record_sizes().never();
        mock.expect_size_history().withf(|schema, _| schema == "maint").times(1).returning(|_, _| {
            Ok(vec![
                SizeSample { kind: SizeKind::Database, name: "app".into(), bytes: 1000, at: 0.0, estimated: false },
                SizeSample { kind: SizeKind::Database, name: "app".into(), bytes: 2000, at: DAY, estimated: false },
            ])
        });
        let report = CapacityPlanning::with_backend(settings, Arc::new(mock)).run(&TaskContext::new(true)).await;
        assert_eq!(report.status, Status::Warning, "{report:#?}");
        assert_eq!(report.metrics["db_bytes"], 3000.0);
        assert!((report.metrics["days_until_budget"] - 7.0).abs() < 1e-6);
        assert!(report.warnings[0].contains("in 7 days"), "{:?}", report.warnings);
        let t = report.items.iter().find(|i| i["kind"] == "table").unwrap();
        assert_eq!((t["samples"].as_u64(), t["growth_bytes_per_day"].is_null()), (Some(1), true));
    }
}
