//! Several relay nodes on one PostgreSQL database (issue 16): real relay processes on
//! loopback, the real support app, one throw-away PostgreSQL server.
//!
//! They need that server: the test command runs them through `scripts/with-postgres.sh`
//! (`cargo test -p deskline-relay --test nodes -- --include-ignored`); a plain `cargo test`
//! lists them as ignored.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::process::{Cli, KillOnDrop, Relay, agent_binary, free_port, wait_until};
use deskline_console::viewer::{self, RelayTarget};
use deskline_protocol::{SessionId, TechnicianId};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A new database for this test on the server the test command started.
fn database() -> String {
    deskline_relay::store::test_database_url().expect("DESKLINE_TEST_DATABASE_URL names no server (run it through scripts/with-postgres.sh)").unwrap()
}

/// Starts a node on `url`. The nodes serve one name, so they share its certificate: `first`'s
/// data directory holds it (the operator copies it, as here).
fn node(dir: &Path, name: &str, url: &str, first: Option<&Path>) -> Relay {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    if let Some(first) = first {
        for file in ["relay-cert.pem", "relay-key.pem"] {
            std::fs::copy(first.join(file), data.join(file)).unwrap();
        }
    }
    let (http, quic) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    Relay::launch(&data, &http, &quic, &["--database-url", url], Stdio::null())
}

/// Three nodes on a new database (B and C with A's certificate), the admin's token (its own
/// password set on node A) and the database's URL.
async fn three_nodes(dir: &Path) -> ([Relay; 3], String, String) {
    let url = database();
    let a = node(dir, "a", &url, None);
    let b = node(dir, "b", &url, Some(&dir.join("a")));
    let c = node(dir, "c", &url, Some(&dir.join("a")));
    assert!(b.admin_password.is_none() && c.admin_password.is_none(), "the admin exists once, made by the first node");
    let admin = a.first_login("admin", a.admin_password.as_deref().unwrap()).await;
    ([a, b, c], admin, url)
}

/// A live-events stream of a console.
async fn events(relay: &Relay, token: &str) -> impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin {
    let response = relay.client.get(format!("{}/api/v1/events", relay.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes_stream()
}

/// Reads live events until one satisfies `check` (20 s at most: a bound so a broken stream fails
/// the test instead of hanging it, not a speed check).
async fn event_where<S>(stream: &mut S, check: impl Fn(&Value) -> bool) -> Value
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt as _;
    let read = async {
        let mut buf = String::new();
        loop {
            let chunk = stream.next().await.expect("the stream ended").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    let value: Value = serde_json::from_str(data.trim()).unwrap();
                    if check(&value) {
                        return value;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("no such event within 20 s")
}

/// The support app for a PIN, at a node's QUIC address, allowing what it is asked.
fn app(pin: &str, quic: &str, fingerprint: &str, dir: &Path, out: &str) -> KillOnDrop {
    Command::new(agent_binary())
        .args(["--pin", pin, "--relay", quic, "--fingerprint", fingerprint, "--synthetic", "320x240", "--auto-consent", "allow"])
        .env("RUST_LOG", "warn")
        .env("XDG_STATE_HOME", dir)
        .stdout(std::fs::File::create(dir.join(out)).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{out}.err"))).unwrap())
        .spawn()
        .map(KillOnDrop)
        .unwrap()
}

/// Three nodes on one database: a technician on node A creates a session, the app connects to
/// node B, the console on node C sees it go active, consent asked through node A reaches the
/// app on node B (its hub learns of the request from the database's notice), and every node
/// answers the same about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh runs it"]
async fn a_session_made_on_one_node_is_served_by_another_and_seen_on_a_third() {
    let dir = tempfile::tempdir().unwrap();
    let ([a, b, c], admin, url) = three_nodes(dir.path()).await;
    // The channel records its sessions: the file is written on the node holding the app.
    a.ok("PATCH", "/channels/1", &admin, Some(json!({"record_sessions": true}))).await;
    // The token made on node A signs in on B and C.
    let mut on_c = events(&c, &admin).await;
    let session = a.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "pin"}))).await;
    let id = session["id"].as_i64().unwrap();
    let created = event_where(&mut on_c, |e| e["session"]["id"] == id).await;
    assert_eq!(created["session"]["state"], "waiting");

    let info_b = b.ok("GET", "/relay", &admin, None).await;
    let started = Instant::now();
    let mut app = app(session["pin"].as_str().unwrap(), info_b["quic"].as_str().unwrap(), info_b["fingerprint"].as_str().unwrap(), dir.path(), "app.out");
    event_where(&mut on_c, |e| e["session"]["id"] == id && e["session"]["state"] == "active").await;
    eprintln!("node C's console saw the app's arrival on node B {:?} after the app started", started.elapsed());
    // What the app reported about itself (stored by node B) reaches node C's console too.
    event_where(&mut on_c, |e| e["session"]["id"] == id && e["session"]["agent"]["os"].as_str().is_some_and(|os| !os.is_empty())).await;

    // Consent asked through node A: the app on node B is asked (and allows).
    let asked = Instant::now();
    a.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    let granted = event_where(&mut on_c, |e| e["session"]["id"] == id && e["session"]["consent"]["status"] == "granted").await;
    eprintln!("consent asked on node A was granted by the app on node B, seen on node C, in {:?}", asked.elapsed());
    assert_eq!(granted["session"]["consent"]["grants"][0]["technician_id"], 1);
    // Found in review: a node that starts took every session with an app for one whose app
    // was lost (as a relay alone must after a crash) and put it back to waiting — node D
    // starting would have cut node B's session. Once D answers, it has looked.
    let d = node(dir.path(), "d", &url, Some(&dir.path().join("a")));
    let trail = d.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
    assert_eq!(count_actions(&trail, "app_disconnected"), 0, "{trail}");
    for relay in [&a, &b, &c, &d] {
        let seen = relay.ok("GET", &format!("/sessions/{id}"), &admin, None).await;
        assert_eq!((seen["state"].as_str(), seen["consent"]["status"].as_str()), (Some("active"), Some("granted")), "{seen}");
    }
    // `deskline view` signed in to node A decodes frames from node B: the API says where the
    // session's media is.
    let fingerprint = info_b["fingerprint"].as_str().unwrap();
    let cli = Cli::login(&a, dir.path(), fingerprint);
    let out = cli.command(&["view", &id.to_string(), "--headless", "--frames", "10", "--timeout", "60"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["frames"].as_u64(), report["width"].as_u64()), (Some(10), Some(320)), "{report}");
    let where_to = a.ok("GET", &format!("/sessions/{id}/relay"), &admin, None).await;
    assert_eq!(where_to["quic"], info_b["quic"]);
    // A viewer that asks node A itself is told where to go and gets its frames from node B.
    let info_a = a.ok("GET", "/relay", &admin, None).await;
    let at_a = RelayTarget::resolve(info_a["quic"].as_str().unwrap(), fingerprint).await.unwrap();
    let joined = viewer::join(&at_a, &admin, SessionId(id), TechnicianId(1)).await.unwrap();
    let mut frames = 0;
    joined.watch(Duration::from_secs(60), |_| { frames += 1; frames < 5 }).await.unwrap();
    assert_eq!(frames, 5);

    // Closed through node C: the hub on node B ends the app's connection, and the app ends.
    c.ok("POST", &format!("/sessions/{id}/close"), &admin, None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        if let Some(status) = app.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the app on node B was not told the session closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ended.success(), "{}", std::fs::read_to_string(dir.path().join("app.out.err")).unwrap());
    wait_until(&b, &admin, &format!("/sessions/{id}"), "closed", 20, |v| v["state"] == "closed").await;

    // The recording node B wrote is listed on every node and played through node C (which
    // passes the request to node B): the same bytes as from node B itself.
    let recordings = wait_until(&c, &admin, &format!("/sessions/{id}/recordings"), "a recording ended", 20, |v| {
        v.as_array().is_some_and(|l| !l.is_empty() && l.iter().all(|r| r["ended_at"].is_string()))
    })
    .await;
    let rid = recordings[0]["id"].as_i64().unwrap();
    let fetch = async |relay: &Relay, path: &str| {
        let response = relay.client.get(format!("{}/api/v1{path}", relay.base)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap()
    };
    let (through_c, at_b) = (fetch(&c, &format!("/recordings/{rid}/video")).await, fetch(&b, &format!("/recordings/{rid}/video")).await);
    assert!(through_c.len() > 1000 && through_c == at_b, "{} bytes through C, {} at B", through_c.len(), at_b.len());
    let (log_c, log_b) = (fetch(&c, &format!("/recordings/{rid}/log")).await, fetch(&b, &format!("/recordings/{rid}/log")).await);
    assert_eq!(log_c, log_b);
}

/// Issue 16: wrong PINs spread over three nodes are limited as on one node — the guessing
/// network's failures are counted in the shared database, so the node it tries next refuses
/// it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh runs it"]
async fn pin_guessing_spread_over_three_nodes_is_limited_as_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let ([a, b, c], admin, _) = three_nodes(dir.path()).await;
    let real = a.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "pin"}))).await;
    let real_pin = real["pin"].as_str().unwrap().to_owned();
    let wrong = if real_pin == "000000" { "000001" } else { "000000" };
    let nodes = [&a, &b, &c];
    let mut infos = Vec::new();
    for relay in nodes {
        infos.push(relay.ok("GET", "/relay", &admin, None).await);
    }
    // The allowance (10 per network and minute), spread over the three nodes at once.
    let allowance = deskline_relay::limits::MAX_CODE_FAILURES_PER_NETWORK;
    let guesses: Vec<KillOnDrop> = (0..allowance)
        .map(|i| {
            let info = &infos[i % 3];
            app(wrong, info["quic"].as_str().unwrap(), info["fingerprint"].as_str().unwrap(), dir.path(), &format!("guess{i}.out"))
        })
        .collect();
    for mut guess in guesses {
        let status = guess.0.wait().unwrap();
        assert!(!status.success());
    }
    for i in 0..allowance {
        let said = std::fs::read_to_string(dir.path().join(format!("guess{i}.out.err"))).unwrap();
        assert!(said.contains("This code is not valid"), "guess {i}: {said}");
    }
    // The next try — on any node, even with the right PIN — is refused for now.
    for (i, info) in infos.iter().enumerate() {
        for (pin, what) in [(wrong, "wrong"), (real_pin.as_str(), "right")] {
            let out = format!("after-{i}-{what}.out");
            let mut late = app(pin, info["quic"].as_str().unwrap(), info["fingerprint"].as_str().unwrap(), dir.path(), &out);
            assert!(!late.0.wait().unwrap().success());
            let said = std::fs::read_to_string(dir.path().join(format!("{out}.err"))).unwrap();
            assert!(said.contains("Too many wrong codes"), "node {i}, {what} PIN: {said}");
        }
    }
    let real_id = real["id"].as_i64().unwrap();
    assert_eq!(a.ok("GET", &format!("/sessions/{real_id}"), &admin, None).await["state"], "waiting");
}

fn count_actions(trail: &Value, action: &str) -> usize {
    trail.as_array().unwrap().iter().filter(|e| e["action"]["action"] == action).count()
}

/// Issue 16: `kill -9` of the node holding a live session with a viewer. The other nodes notice
/// it stopped beating and put its session back to `waiting` (audited, once); the app, whose link
/// lists every node, reconnects to another node and resumes without asking the end user again;
/// the viewer (asked through node A) follows; nothing stored is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh runs it"]
async fn killing_the_node_that_holds_a_session_costs_a_short_reconnect_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ([a, b, c], admin, _) = three_nodes(dir.path()).await;
    let session = a.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "link"}))).await;
    let id = session["id"].as_i64().unwrap();
    let show = format!("/sessions/{id}");
    // The link node B gives lists node B first, then the others (once its heartbeat saw them).
    let link = wait_until(&b, &admin, &show, "a link listing three nodes", 20, |v| {
        v["link"].as_str().is_some_and(|l| l.split("quic=").nth(1).is_some_and(|q| q.split('&').next().unwrap_or("").split(',').count() == 3))
    })
    .await["link"]
        .as_str()
        .unwrap()
        .to_owned();
    let info_b = b.ok("GET", "/relay", &admin, None).await;
    assert!(link.contains(&format!("quic={}", info_b["quic"].as_str().unwrap())), "{link}");
    let _app = KillOnDrop(
        Command::new(agent_binary())
            .args(["--link", &link, "--synthetic", "320x240", "--auto-consent", "allow"])
            .env("RUST_LOG", "warn")
            .env("XDG_STATE_HOME", dir.path())
            .stdout(std::fs::File::create(dir.path().join("app.out")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(&a, &admin, &show, "active", 20, |v| v["state"] == "active").await;
    a.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    wait_until(&a, &admin, &show, "granted", 20, |v| v["consent"]["status"] == "granted").await;
    assert_eq!(a.ok("GET", &format!("/sessions/{id}/relay"), &admin, None).await["quic"], info_b["quic"]);
    // A viewer through node A's API, viewing on node B.
    let cli = Cli::login(&a, dir.path(), info_b["fingerprint"].as_str().unwrap());
    let viewer = cli
        .command(&["view", &id.to_string(), "--headless", "--frames", "300", "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let trail_before = a.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
    let asked_before = count_actions(&trail_before, "remote_requested");

    let killed = Instant::now();
    b.kill();
    // Within 30 s the app is on another node and the session active again, its consent kept.
    let events = format!("/sessions/{id}/events");
    let connections_before = count_actions(&trail_before, "app_connected");
    wait_until(&a, &admin, &events, "the app connected again", 30, |v| count_actions(v, "app_connected") > connections_before).await;
    let back = a.ok("GET", &show, &admin, None).await;
    assert_eq!((back["state"].as_str(), back["consent"]["status"].as_str()), (Some("active"), Some("granted")), "{back}");
    let there = a.ok("GET", &format!("/sessions/{id}/relay"), &admin, None).await;
    eprintln!("node B killed: the app is back through {} after {:?}", there["quic"], killed.elapsed());
    assert_ne!(there["quic"], info_b["quic"]);
    assert_eq!(back["consent"]["grants"][0]["technician_id"], 1);
    let trail = c.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
    assert_eq!(count_actions(&trail, "remote_requested"), asked_before, "the end user was not asked again");
    // Every event stored before is still there, in order; the node's death is audited once.
    let (before, after) = (trail_before.as_array().unwrap(), trail.as_array().unwrap());
    assert_eq!(&after[..before.len()], &before[..], "no stored row lost");
    let since: Vec<&Value> = after[before.len()..].iter().collect();
    let dropped = since.iter().filter(|e| e["action"]["action"] == "app_disconnected").count();
    assert_eq!(dropped, 1, "{since:?}");
    let resumed = since.iter().find(|e| e["action"]["action"] == "app_connected").expect("the app came back");
    assert_eq!(resumed["action"]["resumed"], true);

    // The viewer follows: all its frames, after losing node B once.
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || done_tx.send(viewer.wait_with_output()));
    let out = done.recv_timeout(Duration::from_secs(120)).expect("the viewer did not finish").unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the viewer did not follow: {said}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["frames"].as_u64(), Some(300), "{report}");
    assert!(report["reconnects"].as_u64().unwrap() >= 1, "{report}");
    drop(c);
}
