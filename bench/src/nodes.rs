//! Several relay nodes on one PostgreSQL database (issue 16): API latency with one node (on
//! SQLite, the reference, and on PostgreSQL) and with three nodes sharing the database; what a
//! session's media costs the relay with one node and with three (the relay load of
//! [`crate::relay_load`], its sessions spread over the nodes); and the time from a node's death
//! (`kill -9`) to its session's app connected again through another node.
//!
//! Needs a PostgreSQL server: run it through `scripts/with-postgres.sh`, which names one in
//! `DESKLINE_TEST_DATABASE_URL` (each run gets databases of its own on it).

use crate::api::{OWN_PASSWORD, SignedIn, sign_in};
use crate::procs::{Reaped, sibling_binary};
use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use deskline_api::{CreateSession, SessionView};
use deskline_protocol::session::SessionKind;
use serde::Serialize;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// API latency of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ApiRow {
    /// What served the requests.
    pub setup: String,
    /// Reads (`GET /sessions/{id}`), ms.
    pub read_ms: Option<Summary>,
    /// Writes (a session created, then closed: each one change under the write lock), ms.
    pub write_ms: Option<Summary>,
    /// Requests per second over all clients.
    pub requests_per_s: f64,
}

/// What the benchmark found.
#[derive(Debug, Clone, Serialize)]
pub struct NodesResult {
    /// One node on SQLite, one on PostgreSQL, three on PostgreSQL.
    pub api: Vec<ApiRow>,
    /// Node killed → its session's app connected again through another node, ms, per run.
    pub failover_ms: Vec<f64>,
    /// Their summary.
    pub failover: Option<Summary>,
    /// The same media load through one node on SQLite, one on PostgreSQL, three on PostgreSQL.
    pub load: Vec<LoadRow>,
}

/// One deployment under the relay load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    /// What served the sessions.
    pub setup: String,
    /// Nodes.
    pub nodes: usize,
    /// What the load measured (CPU and memory are the nodes' sums).
    pub result: crate::relay_load::LoadResult,
}

/// A relay process.
struct Node {
    process: Reaped,
    server: String,
    fingerprint: String,
    password: Option<String>,
}

/// Starts a relay on `data` (PostgreSQL when `url` is given), with `first`'s certificate.
fn start(binary: &Path, data: &Path, url: Option<&str>, first: Option<&Path>) -> anyhow::Result<Node> {
    std::fs::create_dir_all(data)?;
    if let Some(first) = first {
        for file in ["relay-cert.pem", "relay-key.pem"] {
            std::fs::copy(first.join(file), data.join(file))?;
        }
    }
    let mut command = Command::new(binary);
    command.args(["serve", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--demo-admin", "admin", "--data-dir"]).arg(data);
    // Every client of the benchmark comes from 127.0.0.1.
    command.args(["--connections-per-network", "4096"]);
    if let Some(url) = url {
        command.args(["--database-url", url]);
    }
    let mut child = command.env("RUST_LOG", "error").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("starting a relay")?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let (mut server, mut fingerprint, mut password) = (String::new(), String::new(), None);
    loop {
        let line = lines.next().context("the relay stopped")??;
        if let Some(p) = line.split("one-time password: ").nth(1) {
            password = Some(p.trim().to_owned());
        }
        if line.starts_with("relay certificate SHA-256") {
            fingerprint = line.rsplit(' ').next().unwrap_or_default().to_owned();
        }
        if let Some(url) = line.strip_prefix("web console: ") {
            server = url.trim_end_matches('/').to_owned();
        }
        if line.starts_with("session links are built on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(Node { process: Reaped(child), server, fingerprint, password })
}

/// A new database on the benchmark's PostgreSQL server.
fn database() -> anyhow::Result<String> {
    deskline_relay::store::test_database_url()
        .context("DESKLINE_TEST_DATABASE_URL names no PostgreSQL server: run `bash scripts/with-postgres.sh target/release/deskline-bench nodes`")?
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Three nodes on a new database; the first made the admin and the certificate.
fn three(binary: &Path, dir: &Path) -> anyhow::Result<(String, Vec<Node>)> {
    let url = database()?;
    let first = dir.join("n0");
    let mut nodes = vec![start(binary, &first, Some(&url), None)?];
    for i in 1..3 {
        nodes.push(start(binary, &dir.join(format!("n{i}")), Some(&url), Some(&first))?);
    }
    Ok((url, nodes))
}

async fn admin_on(nodes: &[Node]) -> anyhow::Result<Vec<SignedIn>> {
    let password = nodes[0].password.clone().context("the first node made no admin")?;
    let first = sign_in(&nodes[0].server, &nodes[0].fingerprint, "admin", &password).await?;
    let mut clients = vec![first];
    for node in &nodes[1..] {
        clients.push(sign_in(&node.server, &node.fingerprint, "admin", OWN_PASSWORD).await?);
    }
    Ok(clients)
}

/// `clients` concurrent loops of create → read → close, spread over `signed` in turn.
async fn api_load(setup: &str, signed: &[SignedIn], clients: usize, rounds: usize) -> anyhow::Result<ApiRow> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let apis: Vec<deskline_console::client::Client> = signed.iter().map(|s| s.client.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let (mut reads, mut writes) = (Vec::new(), Vec::new());
            for r in 0..rounds {
                let api = &apis[(c + r) % apis.len()];
                let t = Instant::now();
                let created: SessionView = api.post("/channels/1/sessions", &CreateSession { kind: SessionKind::Pin, name: None }).await?;
                writes.push(t.elapsed().as_secs_f64() * 1000.0);
                let api = &apis[(c + r + 1) % apis.len()];
                let t = Instant::now();
                let _: SessionView = api.get(&format!("/sessions/{}", created.id)).await?;
                reads.push(t.elapsed().as_secs_f64() * 1000.0);
                let api = &apis[(c + r + 2) % apis.len()];
                let t = Instant::now();
                let _: SessionView = api.post_empty(&format!("/sessions/{}/close", created.id)).await?;
                writes.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>((reads, writes))
        }));
    }
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for task in tasks {
        let (r, w) = task.await??;
        reads.extend(r);
        writes.extend(w);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(ApiRow {
        setup: setup.to_owned(),
        requests_per_s: (reads.len() + writes.len()) as f64 / seconds,
        read_ms: summarize(&reads),
        write_ms: summarize(&writes),
    })
}

/// The session's audit trail's count of `action`.
async fn count(api: &deskline_console::client::Client, id: i64, action: &str) -> anyhow::Result<usize> {
    let trail: serde_json::Value = api.get(&format!("/sessions/{id}/events")).await?;
    Ok(trail.as_array().map_or(0, |t| t.iter().filter(|e| e["action"]["action"] == action).count()))
}

/// One failover: a link session whose app is on node `victim`, the node killed, the time until
/// the app is connected again through another node. The victim is started again afterwards.
async fn failover(binary: &Path, dir: &Path, url: &str, nodes: &mut [Node], signed: &mut [SignedIn], victim: usize) -> anyhow::Result<f64> {
    let other = (victim + 1) % nodes.len();
    let api = &signed[other].client;
    let created: SessionView = api.post("/channels/1/sessions", &CreateSession { kind: SessionKind::Link, name: None }).await?;
    let id = created.id;
    // The victim's link lists it first, then the others (once its heartbeat saw them).
    let mut link = String::new();
    for _ in 0..100 {
        let seen: SessionView = signed[victim].client.get(&format!("/sessions/{id}")).await?;
        link = seen.link.unwrap_or_default();
        if link.split("quic=").nth(1).is_some_and(|q| q.split('&').next().unwrap_or("").split(',').count() == nodes.len()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = Reaped(
        Command::new(sibling_binary("deskline-agent", "deskline-agent")?)
            .args(["--link", &link, "--synthetic", "320x240", "--auto-consent", "allow"])
            .env("RUST_LOG", "error")
            .env("XDG_STATE_HOME", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    if !crate::api::wait_until(api, id, 200, Duration::from_millis(100), |s| s.state == "active").await? {
        bail!("the app did not connect");
    }
    let connected = count(api, id, "app_connected").await?;
    let killed = Instant::now();
    nodes[victim].process.0.kill()?;
    nodes[victim].process.0.wait()?;
    loop {
        if count(api, id, "app_connected").await? > connected {
            break;
        }
        if killed.elapsed() > Duration::from_secs(90) {
            bail!("the app did not come back within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ms = killed.elapsed().as_secs_f64() * 1000.0;
    drop(app);
    let _: SessionView = api.post_empty(&format!("/sessions/{id}/close")).await?;
    // The victim starts again (a new node to the others, on new ports); the admin's token is
    // in the database, so it works there too.
    let node = start(binary, &dir.join(format!("n{victim}")), Some(url), None)?;
    let token = signed[victim].token.clone();
    signed[victim].client = deskline_console::client::Client::new(&node.server, Some(&node.fingerprint), Some(token))?;
    nodes[victim] = node;
    Ok(ms)
}

/// The media load (`sessions` sessions, one viewer each, 30 fps, `seconds` measured) through
/// one node on SQLite, one on PostgreSQL and three on PostgreSQL, every node pinned to the first
/// core and the load generator (a runtime of its own on this thread) to the second, as in the
/// relay load benchmark.
fn media_load(sessions: usize, seconds: f64) -> anyhow::Result<Vec<LoadRow>> {
    use crate::relay_load::{Baseline, Deployment, Level, run};
    crate::procs::pin_this_thread(1)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let binary = sibling_binary("deskline-relay", "deskline-relay")?;
    let level = Level { sessions, viewers: 1, seconds, fps: 30 };
    let mut rows = Vec::new();
    for (setup, postgres, nodes) in [("1 node, SQLite", false, 1), ("1 node, PostgreSQL", true, 1), ("3 nodes, PostgreSQL", true, 3)] {
        let url = if postgres { Some(database()?) } else { None };
        let deployment = Deployment { database_url: url.as_deref(), nodes };
        let result = runtime.block_on(run(level, &binary, Baseline::None, deployment)).with_context(|| format!("the load through {setup}"))?;
        rows.push(LoadRow { setup: setup.to_owned(), nodes, result });
    }
    Ok(rows)
}

/// Runs it: `rounds` create/read/close rounds per client (4 clients) for each setup, `runs`
/// failovers (each ~10 s), then the media load of `sessions` sessions for `seconds` per setup.
pub async fn run(rounds: usize, runs: usize, sessions: usize, seconds: f64) -> anyhow::Result<NodesResult> {
    let binary = sibling_binary("deskline-relay", "deskline-relay")?;
    let dir = tempfile::tempdir()?;
    let clients = 4;
    let mut api = Vec::new();
    {
        let single = start(&binary, &dir.path().join("sqlite"), None, None)?;
        let signed = admin_on(std::slice::from_ref(&single)).await?;
        api.push(api_load("1 node, SQLite", &signed, clients, rounds).await?);
    }
    {
        let url = database()?;
        let single = start(&binary, &dir.path().join("pg1"), Some(&url), None)?;
        let signed = admin_on(std::slice::from_ref(&single)).await?;
        api.push(api_load("1 node, PostgreSQL", &signed, clients, rounds).await?);
    }
    let failover_dir: PathBuf = dir.path().join("three");
    let (url, mut nodes) = three(&binary, &failover_dir)?;
    let mut signed = admin_on(&nodes).await?;
    api.push(api_load("3 nodes, PostgreSQL (requests spread over them)", &signed, clients, rounds).await?);
    let mut failover_ms = Vec::new();
    for run in 0..runs {
        let victim = run % nodes.len();
        failover_ms.push(failover(&binary, &failover_dir, &url, &mut nodes, &mut signed, victim).await?);
    }
    let failover = summarize(&failover_ms);
    drop(nodes);
    let load = if sessions > 0 { tokio::task::spawn_blocking(move || media_load(sessions, seconds)).await?? } else { Vec::new() };
    Ok(NodesResult { api, failover_ms, failover, load })
}

/// The report's tables.
#[must_use]
pub fn table(r: &NodesResult) -> String {
    use std::fmt::Write as _;
    let ms = |s: &Option<Summary>| s.map_or(("-".to_owned(), "-".to_owned()), |s| (format!("{:.1}", s.p50), format!("{:.1}", s.p99)));
    let mut out = String::from("| setup | read p50 ms | read p99 ms | write p50 ms | write p99 ms | requests/s |\n|---|---|---|---|---|---|\n");
    for row in &r.api {
        let ((rp50, rp99), (wp50, wp99)) = (ms(&row.read_ms), ms(&row.write_ms));
        let _ = writeln!(out, "| {} | {rp50} | {rp99} | {wp50} | {wp99} | {:.0} |", row.setup, row.requests_per_s);
    }
    let runs: Vec<String> = r.failover_ms.iter().map(|m| format!("{:.1}", m / 1000.0)).collect();
    let _ = writeln!(
        out,
        "\nNode killed → its session's app connected again through another node: p50 {} s over {} runs ({} s)",
        r.failover.map_or("-".into(), |s| format!("{:.1}", s.p50 / 1000.0)),
        r.failover_ms.len(),
        runs.join(", ")
    );
    if !r.load.is_empty() {
        out.push_str(
            "\n| setup | sessions | frames received / sent | relay CPU s (all nodes) | CPU s per GB | relay p50 ms | p99 ms | fresh frames lost | viewers lost | memory MiB (all nodes) |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
    }
    for row in &r.load {
        let l = &row.result;
        let (p50, p99) = ms(&l.relay_ms);
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {:.2} | {} | {p50} | {p99} | {} | {} | {:.0} |",
            row.setup,
            l.sessions,
            l.frames,
            l.frames_expected,
            l.relay_cpu_s,
            l.relay_cpu_s_per_gb.map_or("-".into(), |c| format!("{c:.1}")),
            l.fresh_frames_lost,
            l.viewers_lost,
            l.relay_rss_mib
        );
    }
    out
}
