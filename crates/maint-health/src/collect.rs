//! The daily "Metrics Collection" task: PostgreSQL, Redis and backup-store figures written
//! as a Prometheus textfile and appended as a JSON snapshot (for capacity planning).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_redis::redis;
use futures::TryStreamExt;
use maint_core::chrono::Utc;
use maint_core::{Impact, Secret, Task, TaskContext, TaskReport, one_line};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::Deserialize;

use crate::textfile::{Family, Kind, render};

/// Every figure the task collects: name, type, help. The report's metrics, the snapshots,
/// the textfile and the push use these names.
pub const METRICS: &[(&str, Kind, &str)] = &[
    ("aindusdb_pg_connections", Kind::Gauge, "Backends connected to the database (pg_stat_database.numbackends)."),
    (
        "aindusdb_pg_xact_commit_total",
        Kind::Counter,
        "Transactions committed in the database since the statistics reset.",
    ),
    (
        "aindusdb_pg_xact_rollback_total",
        Kind::Counter,
        "Transactions rolled back in the database since the statistics reset.",
    ),
    ("aindusdb_pg_blks_read_total", Kind::Counter, "Disk blocks read in the database since the statistics reset."),
    ("aindusdb_pg_blks_hit_total", Kind::Counter, "Buffer cache hits in the database since the statistics reset."),
    ("aindusdb_pg_deadlocks_total", Kind::Counter, "Deadlocks detected in the database since the statistics reset."),
    (
        "aindusdb_pg_temp_bytes_total",
        Kind::Counter,
        "Bytes written to temporary files by queries since the statistics reset.",
    ),
    ("aindusdb_pg_database_bytes", Kind::Gauge, "Size of the database on disk, bytes (pg_database_size)."),
    ("aindusdb_pg_max_connections", Kind::Gauge, "The server's max_connections setting."),
    (
        "aindusdb_pg_indexes_bytes",
        Kind::Gauge,
        "Size of the database's indexes on disk, bytes (vector indexes included).",
    ),
    ("aindusdb_redis_used_memory_bytes", Kind::Gauge, "Memory used by Redis, bytes (INFO used_memory)."),
    ("aindusdb_redis_connected_clients", Kind::Gauge, "Clients connected to Redis."),
    ("aindusdb_redis_keyspace_hits_total", Kind::Counter, "Successful Redis key lookups since the server started."),
    ("aindusdb_redis_keyspace_misses_total", Kind::Counter, "Failed Redis key lookups since the server started."),
    ("aindusdb_redis_evicted_keys_total", Kind::Counter, "Redis keys evicted for maxmemory since the server started."),
    ("aindusdb_redis_mem_fragmentation_ratio", Kind::Gauge, "Redis memory fragmentation ratio (RSS over used memory)."),
    ("aindusdb_backups", Kind::Gauge, "Backups in the backup store (dumps with a manifest)."),
    ("aindusdb_backups_bytes", Kind::Gauge, "Size of the dumps in the backup store, bytes."),
    (
        "aindusdb_backup_last_timestamp_seconds",
        Kind::Gauge,
        "When the newest backup's manifest was written to the store (unix seconds).",
    ),
];

/// What to collect and where to write it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// PostgreSQL.
    pub database_url: Option<Secret>,
    /// Redis.
    pub redis_url: Option<Secret>,
    /// Prometheus textfile to write (node_exporter textfile collector).
    pub textfile: Option<PathBuf>,
    /// JSON-lines file each run appends one snapshot to.
    pub snapshots: Option<PathBuf>,
    /// Prometheus Pushgateway base URL (`http://pushgateway:9091`; credentials in the URL
    /// are allowed): each run replaces the group `job/<push_job>/instance/<host name>`.
    pub pushgateway: Option<Secret>,
    /// The Pushgateway job label (default `maint`).
    pub push_job: Option<String>,
    /// The backup store (built by the caller).
    #[serde(skip)]
    pub store: Option<Arc<dyn ObjectStore>>,
}

impl CollectConfig {
    /// Checks what can be checked before a run: the Pushgateway URL (named
    /// `collect.pushgateway`; the value is not repeated, it may hold credentials).
    pub fn validate(&self) -> Result<(), maint_core::Error> {
        if let Some(url) = &self.pushgateway {
            let ok = reqwest::Url::parse(url.expose())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(maint_core::Error::invalid("collect.pushgateway", "not an http(s) URL"));
            }
        }
        Ok(())
    }
}

/// The metrics-collection task (`metrics-collection`, impact none).
#[derive(Debug, Clone)]
pub struct MetricsCollection {
    config: CollectConfig,
}

impl MetricsCollection {
    /// A task over this configuration.
    pub fn new(config: CollectConfig) -> Self {
        MetricsCollection { config }
    }

    /// Collects every configured source; a source that fails is reported, the others still count.
    pub async fn collect(&self) -> (BTreeMap<String, f64>, Vec<String>) {
        let mut m = BTreeMap::new();
        let mut errors = Vec::new();
        if let Some(url) = &self.config.database_url {
            match postgres(url).await {
                Ok(v) => m.extend(v),
                Err(e) => errors.push(format!("postgresql: {e}")),
            }
        }
        if let Some(url) = &self.config.redis_url {
            match redis_info(url).await {
                Ok(v) => m.extend(v),
                Err(e) => errors.push(format!("redis: {e}")),
            }
        }
        if let Some(store) = &self.config.store {
            match store.list(Some(&Path::from("backups"))).try_collect::<Vec<_>>().await {
                Ok(objects) => {
                    let dumps: Vec<_> = objects.iter().filter(|o| o.location.as_ref().contains(".dump")).collect();
                    let manifests: Vec<_> =
                        dumps.iter().filter(|o| o.location.as_ref().ends_with(".manifest.json")).collect();
                    m.insert("aindusdb_backups".into(), manifests.len() as f64);
                    if let Some(newest) = manifests.iter().map(|o| o.last_modified).max() {
                        m.insert(
                            "aindusdb_backup_last_timestamp_seconds".into(),
                            newest.timestamp_millis() as f64 / 1000.0,
                        );
                    }
                    let bytes: u64 =
                        dumps.iter().filter(|o| !o.location.as_ref().ends_with(".json")).map(|o| o.size).sum();
                    m.insert("aindusdb_backups_bytes".into(), bytes as f64);
                }
                Err(e) => errors.push(format!("object store: {}", one_line(&e))),
            }
        }
        (m, errors)
    }
}

async fn postgres(url: &Secret) -> Result<BTreeMap<String, f64>, String> {
    let client = maint_db::connect(url).await.map_err(|e| one_line(&e))?;
    let row = client
        .query_one(
            "SELECT numbackends::float8, xact_commit::float8, xact_rollback::float8, blks_read::float8, \
             blks_hit::float8, deadlocks::float8, temp_bytes::float8, pg_database_size(datname)::float8, \
             current_setting('max_connections')::float8, \
             (SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class WHERE relkind = 'i')::float8 \
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| one_line(&e))?;
    // The first ten entries of METRICS, in the order of the SELECT.
    Ok(METRICS[..10].iter().enumerate().map(|(i, (n, ..))| ((*n).to_owned(), row.get::<_, f64>(i))).collect())
}

async fn redis_info(url: &Secret) -> Result<BTreeMap<String, f64>, String> {
    let client = redis::Client::open(url.expose()).map_err(|_| "invalid Redis URL".to_owned())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO").query_async(&mut conn).await.map_err(|e| e.to_string())?;
    let wanted = [
        ("used_memory", "aindusdb_redis_used_memory_bytes"),
        ("connected_clients", "aindusdb_redis_connected_clients"),
        ("keyspace_hits", "aindusdb_redis_keyspace_hits_total"),
        ("keyspace_misses", "aindusdb_redis_keyspace_misses_total"),
        ("evicted_keys", "aindusdb_redis_evicted_keys_total"),
        ("mem_fragmentation_ratio", "aindusdb_redis_mem_fragmentation_ratio"),
    ];
    let mut out = BTreeMap::new();
    for line in info.lines() {
        if let Some((k, v)) = line.split_once(':')
            && let Some((_, name)) = wanted.iter().find(|(w, _)| *w == k)
            && let Ok(v) = v.trim().parse::<f64>()
        {
            out.insert((*name).to_owned(), v);
        }
    }
    Ok(out)
}

/// Replaces this host's group on a Pushgateway with `text` (`PUT
/// <base>/metrics/job/<job>/instance/<host>`, the Pushgateway's API). A redirect is a
/// failure and is not followed (nor is a `Referer` sent): the URL may carry credentials.
pub async fn push_to_gateway(base: &Secret, job: &str, text: &str) -> Result<(), String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut url = reqwest::Url::parse(base.expose()).map_err(|e| format!("pushgateway: not a URL: {e}"))?;
    url.path_segments_mut().map_err(|()| "pushgateway: not a base URL".to_owned())?.pop_if_empty().extend([
        "metrics",
        "job",
        job,
        "instance",
        if host.is_empty() { "unknown" } else { &host },
    ]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("pushgateway: {}", one_line(&e)))?;
    let resp = client
        .put(url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(text.to_owned())
        .send()
        .await
        .map_err(|e| format!("pushgateway: {}", one_line(&e.without_url())))?;
    if resp.status().is_redirection() {
        let host = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| resp.url().join(loc).ok())
            .and_then(|u| u.host_str().map(|h| format!(" to {h}")))
            .unwrap_or_default();
        return Err(format!("pushgateway: redirected (HTTP {}){host}, not followed", resp.status().as_u16()));
    }
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("pushgateway answered {status}: {}", body.trim().chars().take(200).collect::<String>()));
    }
    Ok(())
}

/// The metrics as Prometheus text, typed and described by [`METRICS`] (a name not in it is
/// written as a gauge).
pub fn render_textfile(metrics: &BTreeMap<String, f64>) -> String {
    let families: Vec<Family> = metrics
        .iter()
        .map(|(name, value)| {
            let (kind, help) = METRICS
                .iter()
                .find(|(n, ..)| n == name)
                .map_or((Kind::Gauge, "An AindusDB figure collected by maint."), |(_, k, h)| (*k, *h));
            let mut f = Family::new(name.clone(), kind, help);
            f.sample(&[], *value);
            f
        })
        .collect();
    render(&families)
}

#[async_trait]
impl Task for MetricsCollection {
    fn name(&self) -> &str {
        "metrics-collection"
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(self.name(), ctx.dry_run);
        let (metrics, errors) = self.collect().await;
        if metrics.is_empty() && errors.is_empty() {
            report.skip("nothing to collect: configure a database, Redis or a backup store");
            return report.finish();
        }
        for (k, v) in &metrics {
            report.metric(k.clone(), *v);
        }
        let mut errors = errors;
        if !ctx.dry_run {
            if let Some(base) = &self.config.pushgateway {
                let job = self.config.push_job.as_deref().unwrap_or("maint");
                match push_to_gateway(base, job, &render_textfile(&metrics)).await {
                    Ok(()) => {
                        report.metric("pushed", 1.0);
                    }
                    Err(e) => errors.push(e),
                }
            }
            if let Some(path) = &self.config.textfile
                && let Err(e) = maint_core::write_atomic(path, render_textfile(&metrics).as_bytes())
            {
                report.warn(format!("cannot write {}: {e}", path.display()));
            }
            if let Some(path) = &self.config.snapshots {
                let line = serde_json::json!({ "at": Utc::now(), "metrics": metrics }).to_string();
                let appended = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()));
                if let Err(e) = appended {
                    report.warn(format!("cannot append to {}: {e}", path.display()));
                }
            }
        }
        if !errors.is_empty() {
            report.fail(errors.join("; "));
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_only_counters_are_named_total_and_every_figure_has_help() {
        for (name, kind, help) in METRICS {
            assert_eq!(name.ends_with("_total"), *kind == Kind::Counter, "{name}");
            assert!(help.ends_with('.') && !help.contains('\n'), "{name}");
        }
        let text = render_textfile(&BTreeMap::from([("aindusdb_pg_deadlocks_total".to_owned(), 2.0)]));
        assert_eq!(
            text,
            "# HELP aindusdb_pg_deadlocks_total Deadlocks detected in the database since the statistics reset.\n\
             # TYPE aindusdb_pg_deadlocks_total counter\naindusdb_pg_deadlocks_total 2\n"
        );
    }
}
