use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, IntoConnectionInfo, RedisError, Value};
use deadpool_redis::{Pool, Runtime};
use maint_core::Secret;

use crate::Error;
use crate::backend::{
    CacheBackend, Change, CommandExposure, Key, KeyAction, MemoryInfo, Observation, Outcome, Probe, Recheck,
    SecurityFacts, TTL_NOT_READ,
};
use crate::config::Mode;

/// Re-checks the condition and acts in one atomic step, for each key of the call (five
/// arguments per key: check, two parameters, action, TTL in ms). Returns one code per key:
/// 1 unlinked, 2 TTL set, 0 kept (the condition no longer holds), -1 gone, -9 bad arguments.
const APPLY_LUA: &str = r#"
local function one(key, check, p1, p2, action, ms)
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then return -1 end
  if check == 'field' then
    if t ~= 'hash' then return 0 end
    if redis.call('HGET', key, p1) ~= p2 then return 0 end
  elseif check == 'idle' then
    if redis.call('PTTL', key) ~= -1 then return 0 end
    local idle = redis.pcall('OBJECT', 'IDLETIME', key)
    if type(idle) ~= 'number' or idle < tonumber(p1) then return 0 end
  elseif check == 'memory' then
    local m = redis.call('MEMORY', 'USAGE', key)
    if not m or m <= tonumber(p1) then return 0 end
  else
    return -9
  end
  if action == 'unlink' then
    redis.call('UNLINK', key)
    return 1
  elseif action == 'expire' then
    if redis.call('PTTL', key) ~= -1 then return 0 end
    redis.call('PEXPIRE', key, ms)
    return 2
  end
  return -9
end
local out = {}
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 5
  out[i] = one(key, ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5])
end
return out
"#;

/// One Redis node over a deadpool-redis pool. Reads are plain pipelined commands (`PTTL`
/// plus `HGET`, `OBJECT IDLETIME` or `MEMORY USAGE`); the check-and-act script is loaded
/// once (`SCRIPT LOAD`) and called with `EVALSHA`; after a `SCRIPT FLUSH` it is reloaded.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    pool: Pool,
    node: String,
    tls: bool,
    apply_sha: String,
    /// Keys per script call: a few dozen on a standalone server (less per-call overhead);
    /// 1 on a cluster node, where a script's keys must share a hash slot.
    keys_per_call: usize,
}

/// `host:port/db` of a URL, never its credentials.
fn node_name(url: &Secret) -> String {
    match redis::parse_redis_url(url.expose()) {
        Some(u) => {
            let db = u.path().trim_start_matches('/');
            let db = if db.is_empty() { "0" } else { db };
            format!("{}:{}/{db}", u.host_str().unwrap_or("?"), u.port().unwrap_or(6379))
        }
        None => "(invalid URL)".into(),
    }
}

/// Removes the URL's password from a message, in case a client error quoted it.
pub(crate) fn redact(message: &str, url: &Secret) -> String {
    match redis::parse_redis_url(url.expose()).and_then(|u| u.password().map(str::to_owned)) {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "***"),
        _ => message.to_owned(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        Value::SimpleString(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The masters listed by `CLUSTER NODES` (`host`, `port`). The node we asked (`myself`) is
/// reached the way we reached it (`seed`): behind NAT or Docker its own address is not ours
/// to use. Failed or address-less masters are left out.
pub fn parse_cluster_masters(nodes: &str, seed: (&str, u16)) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| matches!(*f, "fail" | "noaddr" | "handshake")) {
            continue;
        }
        if flags.contains(&"myself") {
            out.push((seed.0.to_owned(), seed.1));
            continue;
        }
        let addr = fields[1].split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else { continue };
        let Ok(port) = port.parse::<u16>() else { continue };
        if host.is_empty() {
            continue;
        }
        out.push((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the server of `info` is reached over TLS (`rediss://`, and every other scheme
/// redis-rs reads as TLS).
pub(crate) fn is_tls(info: &redis::ConnectionInfo) -> bool {
    matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
}

/// The client for `url`: `rediss://` verifies the server against the PEM certificates in
/// `ca_file` when given, else the system's roots (`rediss://host/#insecure` skips the check).
/// A CA file with a plain `redis://` URL is refused, so a TLS setting is never silently unused.
fn client(url: &Secret, ca_file: Option<&Path>) -> Result<redis::Client, Error> {
    let invalid_url = || {
        Error::invalid(
            "redis_url",
            "not a Redis URL (expected redis://[user:password@]host[:port][/db] or rediss://...)",
        )
    };
    let info = url.expose().into_connection_info().map_err(|_| invalid_url())?;
    let tls = is_tls(&info);
    // redis-rs builds its rustls configuration with the process's default provider; more
    // than one provider may be compiled in, so name ours (a no-op when one is installed).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(path) = ca_file else { return redis::Client::open(info).map_err(|_| invalid_url()) };
    if !tls {
        return Err(Error::invalid("ca_file", "set, but redis_url is not a rediss:// (TLS) URL"));
    }
    let pem =
        std::fs::read(path).map_err(|e| Error::invalid("ca_file", format!("cannot read {}: {e}", path.display())))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(Error::invalid("ca_file", format!("{}: no PEM certificate in it", path.display())));
    }
    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
    redis::Client::build_with_tls(info, certs)
        .map_err(|e| Error::invalid("ca_file", format!("{}: {}", path.display(), e.detail().unwrap_or("unusable"))))
}

impl RedisBackend {
    /// Connects (PING, so a wrong password fails here) and loads the scripts; `rediss://`
    /// URLs are checked against the system's roots (see [`RedisBackend::connect_with_ca`]).
    pub async fn connect(url: &Secret) -> Result<RedisBackend, Error> {
        RedisBackend::connect_with_ca(url, None).await
    }

    /// [`RedisBackend::connect`], with the server certificate of a `rediss://` URL checked
    /// against the PEM CA certificates in `ca_file` instead of the system's roots.
    pub async fn connect_with_ca(url: &Secret, ca_file: Option<&Path>) -> Result<RedisBackend, Error> {
        let client = client(url, ca_file)?;
        let node = node_name(url);
        let tls = is_tls(client.get_connection_info());
        let connect_err =
            |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect { node: node.clone(), source };
        // redis-rs gives up on a reply after 500 ms by default; a big pipeline on a busy
        // server may take longer, and giving up half way would only repeat the work.
        let conn_cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let manager = deadpool_redis::Manager::new_with_config(client.get_connection_info().clone(), conn_cfg)
            .map_err(|e| connect_err(Box::new(e)))?;
        let pool = Pool::builder(manager)
            .max_size(2)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| connect_err(Box::new(e)))?;
        let mut backend = RedisBackend { pool, node: node.clone(), tls, apply_sha: String::new(), keys_per_call: 32 };
        let mut conn = backend.pool.get().await.map_err(|e| connect_err(Box::new(e)))?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| connect_err(Box::new(e)))?;
        drop(conn);
        backend.load_scripts().await?;
        Ok(backend)
    }

    /// Connects to every node the cleanup must scan: the server itself, or every master of
    /// a cluster (found with `CLUSTER NODES` on the node the URL names, same credentials).
    /// `rediss://` URLs are checked against the system's roots.
    pub async fn connect_all(url: &Secret, mode: Mode) -> Result<Vec<Arc<dyn CacheBackend>>, Error> {
        RedisBackend::connect_all_with_ca(url, mode, None).await
    }

    /// [`RedisBackend::connect_all`], checking `rediss://` servers against `ca_file`.
    pub async fn connect_all_with_ca(
        url: &Secret,
        mode: Mode,
        ca_file: Option<&Path>,
    ) -> Result<Vec<Arc<dyn CacheBackend>>, Error> {
        let seed = RedisBackend::connect_with_ca(url, ca_file).await?;
        if mode == Mode::Standalone {
            return Ok(vec![Arc::new(seed)]);
        }
        let mut conn = seed.conn().await?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(|source| Error::Command { node: seed.node.clone(), operation: "CLUSTER NODES", source })?;
        let parsed = redis::parse_redis_url(url.expose()).expect("validated by connect");
        let seed_host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
        let masters = parse_cluster_masters(&nodes, (&seed_host, parsed.port().unwrap_or(6379)));
        if masters.is_empty() {
            return Err(Error::Reply {
                node: seed.node.clone(),
                operation: "CLUSTER NODES",
                detail: "no reachable master listed".into(),
            });
        }
        let mut out: Vec<Arc<dyn CacheBackend>> = Vec::new();
        for (host, port) in masters {
            let mut u = parsed.clone();
            let host_in_url = if host.contains(':') { format!("[{host}]") } else { host.clone() };
            let ok = u.set_host(Some(&host_in_url)).is_ok() && u.set_port(Some(port)).is_ok();
            if !ok {
                return Err(Error::Reply {
                    node: seed.node.clone(),
                    operation: "CLUSTER NODES",
                    detail: format!("unusable master address {host}:{port}"),
                });
            }
            u.set_path("");
            let node = RedisBackend::connect_with_ca(&Secret::new(u.to_string()), ca_file).await?;
            out.push(Arc::new(node.with_keys_per_call(1)));
        }
        Ok(out)
    }

    /// Sets how many keys one check-and-act script call handles (at least 1). Cluster nodes
    /// use 1, since a script's keys must share a hash slot there.
    pub fn with_keys_per_call(mut self, n: usize) -> Self {
        self.keys_per_call = n.max(1);
        self
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, Error> {
        self.pool.get().await.map_err(|e| Error::Connect { node: self.node.clone(), source: Box::new(e) })
    }

    fn cmd_err(&self, operation: &'static str) -> impl Fn(RedisError) -> Error + '_ {
        move |source| Error::Command { node: self.node.clone(), operation, source }
    }

    async fn load_scripts(&mut self) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        self.apply_sha = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(APPLY_LUA)
            .query_async(&mut conn)
            .await
            .map_err(self.cmd_err("SCRIPT LOAD"))?;
        Ok(())
    }

    /// Runs a pipeline of EVALSHA calls; on NOSCRIPT (scripts flushed meanwhile) reloads
    /// the script and retries once (it re-checks everything, so a retry is safe).
    async fn run_scripts(&self, pipe: &redis::Pipeline, operation: &'static str) -> Result<Vec<Value>, Error> {
        let mut conn = self.conn().await?;
        for attempt in 0..2 {
            let replies: Vec<Result<Value, RedisError>> =
                pipe.query_async(&mut conn).await.map_err(self.cmd_err(operation))?;
            if attempt == 0 && replies.iter().any(|r| matches!(r, Err(e) if e.code() == Some("NOSCRIPT"))) {
                let _: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(APPLY_LUA)
                    .query_async(&mut conn)
                    .await
                    .map_err(self.cmd_err("SCRIPT LOAD"))?;
                continue;
            }
            return replies.into_iter().collect::<Result<Vec<_>, _>>().map_err(self.cmd_err(operation));
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn config_get(&self, conn: &mut deadpool_redis::Connection, name: &str) -> Option<String> {
        let map: HashMap<String, String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(conn).await.ok()?;
        map.get(name).cloned()
    }
}

#[async_trait]
impl CacheBackend for RedisBackend {
    fn node(&self) -> String {
        self.node.clone()
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: u32) -> Result<(u64, Vec<Key>), Error> {
        let mut conn = self.conn().await?;
        redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(self.cmd_err("SCAN"))
    }

    async fn inspect(&self, keys: &[Key], probe: &Probe, ttl: bool) -> Result<Vec<Observation>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Plain commands, pipelined: cheaper on the server than a script, and atomicity is
        // not needed here because `apply` re-checks. PTTL (only when the rule needs it) and
        // OBJECT IDLETIME do not touch the key's access time; HGET does (see the rule order
        // in the executor).
        let per_key = if ttl { 2 } else { 1 };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for key in keys {
            if ttl {
                pipe.cmd("PTTL").arg(key);
            }
            match probe {
                Probe::Field(f) => pipe.cmd("HGET").arg(key).arg(f),
                Probe::Idle => pipe.cmd("OBJECT").arg("IDLETIME").arg(key),
                Probe::Memory => pipe.cmd("MEMORY").arg("USAGE").arg(key),
            };
        }
        let mut conn = self.conn().await?;
        let replies: Vec<Result<Value, RedisError>> =
            pipe.query_async(&mut conn).await.map_err(self.cmd_err("inspect pipeline"))?;
        if replies.len() != keys.len() * per_key {
            return Err(Error::Reply {
                node: self.node.clone(),
                operation: "inspect pipeline",
                detail: format!("{} replies for {} keys", replies.len(), keys.len()),
            });
        }
        let mut out = Vec::with_capacity(keys.len());
        for (key, group) in keys.iter().zip(replies.chunks(per_key)) {
            let (ttl_reply, probe_reply) = if ttl { (Some(&group[0]), &group[1]) } else { (None, &group[0]) };
            let ttl_ms = match ttl_reply {
                None => TTL_NOT_READ,
                Some(Ok(v)) => int(v).unwrap_or(-2),
                Some(Err(e)) => {
                    return Err(Error::Command { node: self.node.clone(), operation: "PTTL", source: e.clone() });
                }
            };
            let mut obs = Observation { key: key.clone(), ttl_ms, ..Default::default() };
            obs.kind = if ttl_ms == -2 { "none".into() } else { "key".into() };
            match (probe, probe_reply) {
                (_, _) if ttl_ms == -2 => {}
                (Probe::Field(_), Ok(Value::BulkString(b))) => {
                    obs.kind = "hash".into();
                    obs.field = Some(b.clone());
                }
                // Nil: a hash without the field (or, without PTTL, a key gone meanwhile).
                (Probe::Field(_), Ok(_)) => obs.kind = "hash".into(),
                (Probe::Field(_), Err(e)) if e.code() == Some("WRONGTYPE") => obs.kind = "other".into(),
                // LFU policy: "An LFU maxmemory policy is selected, idle time not tracked."
                (Probe::Idle, Err(_)) => {}
                (Probe::Idle, Ok(v)) => obs.idle_secs = int(v).and_then(|i| u64::try_from(i).ok()),
                (Probe::Memory, Ok(v)) => obs.memory_bytes = int(v).and_then(|i| u64::try_from(i).ok()),
                (_, Err(e)) => {
                    return Err(Error::Command {
                        node: self.node.clone(),
                        operation: "inspect pipeline",
                        source: e.clone(),
                    });
                }
            }
            out.push(obs);
        }
        Ok(out)
    }

    async fn apply(&self, actions: &[KeyAction]) -> Result<Vec<Outcome>, Error> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for group in actions.chunks(self.keys_per_call.max(1)) {
            let cmd = pipe.cmd("EVALSHA").arg(&self.apply_sha).arg(group.len());
            for a in group {
                cmd.arg(&a.key);
            }
            for a in group {
                match &a.recheck {
                    Recheck::FieldUnchanged { field, value } => cmd.arg("field").arg(field).arg(value),
                    Recheck::IdleAtLeast { secs } => cmd.arg("idle").arg(*secs).arg(""),
                    Recheck::LargerThan { bytes } => cmd.arg("memory").arg(*bytes).arg(""),
                };
                match a.change {
                    Change::Unlink => cmd.arg("unlink").arg(0),
                    Change::Expire(ms) => cmd.arg("expire").arg(ms),
                };
            }
        }
        let replies = self.run_scripts(&pipe, "EVALSHA apply").await?;
        let bad = |detail: String| Error::Reply { node: self.node.clone(), operation: "EVALSHA apply", detail };
        let mut out = Vec::with_capacity(actions.len());
        for reply in &replies {
            let Value::Array(codes) = reply else { return Err(bad(format!("{reply:?}"))) };
            for code in codes {
                out.push(match int(code) {
                    Some(1) => Outcome::Deleted,
                    Some(2) => Outcome::TtlSet,
                    Some(0) => Outcome::Kept,
                    Some(-1) => Outcome::Gone,
                    _ => return Err(bad(format!("{code:?}"))),
                });
            }
        }
        if out.len() != actions.len() {
            return Err(bad(format!("{} outcomes for {} keys", out.len(), actions.len())));
        }
        Ok(out)
    }

    async fn memory(&self) -> Result<MemoryInfo, Error> {
        let mut conn = self.conn().await?;
        let info: String =
            redis::cmd("INFO").arg("memory").query_async(&mut conn).await.map_err(self.cmd_err("INFO memory"))?;
        Ok(parse_info_memory(&info))
    }

    async fn eviction_policy(&self) -> Result<Option<String>, Error> {
        let mut conn = self.conn().await?;
        Ok(self.config_get(&mut conn, "maxmemory-policy").await)
    }

    async fn purge_memory(&self) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        redis::cmd("MEMORY").arg("PURGE").query_async(&mut conn).await.map_err(self.cmd_err("MEMORY PURGE"))
    }

    async fn security_facts(&self) -> Result<SecurityFacts, Error> {
        let mut conn = self.conn().await?;
        let mut facts = SecurityFacts { node: self.node.clone(), ..Default::default() };
        let user: Result<HashMap<String, Value>, _> =
            redis::cmd("ACL").arg("GETUSER").arg("default").query_async(&mut conn).await;
        if let Ok(user) = user
            && let Some(Value::Array(flags) | Value::Set(flags)) = user.get("flags")
        {
            let flags: Vec<String> = flags.iter().filter_map(text).collect();
            facts.default_user_enabled = Some(flags.iter().any(|f| f == "on"));
            facts.default_user_nopass = Some(flags.iter().any(|f| f == "nopass"));
        }
        facts.protected_mode = self.config_get(&mut conn, "protected-mode").await.map(|v| v == "yes");
        facts.bind =
            self.config_get(&mut conn, "bind").await.map(|v| v.split_whitespace().map(str::to_owned).collect());
        facts.tls = match self.config_get(&mut conn, "tls-port").await {
            _ if self.tls => Some(true),
            Some(port) => Some(port.trim() != "0"),
            None => None,
        };
        let debug_setting = self.config_get(&mut conn, "enable-debug-command").await;
        for (name, probe) in [
            ("FLUSHALL", &["FLUSHALL"][..]),
            ("CONFIG", &["CONFIG", "SET", "maxmemory", "0"][..]),
            ("DEBUG", &["DEBUG", "SLEEP", "0"][..]),
        ] {
            let info: Result<Vec<Value>, _> = redis::cmd("COMMAND").arg("INFO").arg(name).query_async(&mut conn).await;
            let present = matches!(info.as_deref(), Ok([Value::Array(_) | Value::Map(_)]));
            let dry: Result<Value, _> =
                redis::cmd("ACL").arg("DRYRUN").arg("default").arg(probe).query_async(&mut conn).await;
            // Redis 7 refuses DEBUG to everyone unless enable-debug-command allows it.
            let debug_off = name == "DEBUG" && debug_setting.as_deref() == Some("no");
            let default_user_allowed = match dry {
                _ if debug_off => Some(false),
                Ok(v) => Some(text(&v).as_deref() == Some("OK")),
                // Unknown command for DRYRUN means it is renamed away: not runnable.
                Err(e) if !present && e.to_string().to_ascii_lowercase().contains("not found") => Some(false),
                Err(_) => None,
            };
            facts.commands.push(CommandExposure { command: name.to_owned(), present, default_user_allowed });
        }
        Ok(facts)
    }
}

/// Parses the `INFO memory` section.
pub fn parse_info_memory(info: &str) -> MemoryInfo {
    let mut m = MemoryInfo::default();
    for line in info.lines() {
        let Some((k, v)) = line.trim().split_once(':') else { continue };
        match k {
            "used_memory" => m.used_memory = v.parse().unwrap_or(0),
            "mem_fragmentation_ratio" => m.fragmentation_ratio = v.parse().unwrap_or(0.0),
            "lazyfree_pending_objects" => m.lazyfree_pending_objects = v.parse().unwrap_or(0),
            "mem_allocator" => m.allocator = v.to_owned(),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_masters_are_every_healthy_master() {
        let nodes = "\
07c3 172.17.0.5:6379@16379 myself,master - 0 0 1 connected 0-5460
67ed 10.0.0.2:7001@17001,redis-b.local master - 0 1426238316232 2 connected 5461-10922
292f 10.0.0.3:7002@17002 master,fail - 0 1426238316232 3 connected
e7d1 10.0.0.4:7003@17003 slave 07c3 0 1426238316232 1 connected
824f :7004@17004 master,noaddr - 0 0 4 connected 10923-16383
9a1b [::1]:7005@17005 master - 0 0 5 connected
bad line";
        assert_eq!(
            parse_cluster_masters(nodes, ("seed.local", 32768)),
            vec![("10.0.0.2".into(), 7001), ("::1".into(), 7005), ("seed.local".into(), 32768)]
        );
        assert_eq!(
            parse_cluster_masters("07c3 :6379@16379 myself,master - 0 0 0 connected", ("127.0.0.1", 32768)),
            vec![("127.0.0.1".into(), 32768)]
        );
    }

    #[test]
    fn info_memory_and_names_never_show_the_password() {
        let m = parse_info_memory(
            "# Memory\r\nused_memory:1048576\r\nmem_fragmentation_ratio:1.52\r\nlazyfree_pending_objects:3\r\nmem_allocator:jemalloc-5.3.0\r\n",
        );
        assert_eq!(m.used_memory, 1 << 20);
        assert_eq!(m.fragmentation_ratio, 1.52);
        assert_eq!(m.lazyfree_pending_objects, 3);
        assert_eq!(m.allocator, "jemalloc-5.3.0");
        let url = Secret::new("redis://app:hunter2@cache.internal:6380/3");
        assert_eq!(node_name(&url), "cache.internal:6380/3");
        assert_eq!(redact("WRONGPASS for hunter2", &url), "WRONGPASS for ***");
    }
}
