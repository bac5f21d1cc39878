//! The real relay binary on loopback: HTTPS with its own certificate, SQLite files, SIGKILL.
#![allow(clippy::unwrap_used)]

mod common;

use common::ONE_TIME;
use common::process::{Cli, KillOnDrop, PASSWORD, RELAY, Relay, agent_binary, free_port, next_event, shared_session, wait_until};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;


/// Creates `n` technicians in the default channel; returns their (id, token).
async fn technicians(relay: &Relay, admin: &str, prefix: &str, n: usize) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let username = format!("{prefix}{i}");
        let t = relay.ok("POST", "/technicians", admin, Some(json!({"username": username, "password": ONE_TIME, "role": "technician"}))).await;
        let id = t["id"].as_i64().unwrap();
        relay.ok("POST", "/channels/1/members", admin, Some(json!({"technician_id": id}))).await;
        out.push((id, relay.first_login(&username, ONE_TIME).await));
    }
    out
}

fn orphans(data_dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(data_dir.join("deskline.db")).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.session_id = s.id)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_traffic_keeps_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let admin_password = relay.admin_password.clone().expect("first start prints the admin password");
    let admin = relay.first_login("admin", &admin_password).await;
    let channel = relay.ok("POST", "/channels", &admin, Some(json!({"name": "Night shift"}))).await;
    let techs = technicians(&relay, &admin, "tech", 6).await;

    // Each technician creates a session, invites the next technician and closes it, over and
    // over, recording what the relay acknowledged, until the relay is killed under them.
    let relay = std::sync::Arc::new(relay);
    let mut tasks = Vec::new();
    for (i, (_, token)) in techs.iter().enumerate() {
        let relay = relay.clone();
        let token = token.clone();
        let next = techs[(i + 1) % techs.len()].0;
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<(i64, &'static str)> = Vec::new();
            for round in 0.. {
                let kind = if round % 2 == 0 { "pin" } else { "link" };
                let Ok((201, v)) = relay.call("POST", "/channels/1/sessions", Some(&token), Some(json!({"kind": kind}))).await else { break };
                let id = v["id"].as_i64().unwrap();
                acked.push((id, "waiting"));
                let Ok((200, _)) = relay.call("POST", &format!("/sessions/{id}/invite"), Some(&token), Some(json!({"technician_id": next}))).await else { break };
                let Ok((200, _)) = relay.call("POST", &format!("/sessions/{id}/close"), Some(&token), None).await else { break };
                acked.last_mut().unwrap().1 = "closed";
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.kill();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert!(acked.len() >= 6, "traffic was flowing: {} sessions acknowledged", acked.len());

    let relay = Relay::start(dir.path());
    assert_eq!(relay.admin_password, None, "the admin exists: no new password");
    // Tokens survive the restart too.
    let token = &techs[0].1;
    relay.ok("GET", "/me", token, None).await;
    // The printed one-time password died when the admin set their own.
    let (status, _) = relay.call("POST", "/login", None, Some(json!({"username": "admin", "password": admin_password}))).await.unwrap();
    assert_eq!(status, 401, "the demo admin's one-time password works once");
    let admin = relay.login("admin", PASSWORD).await;
    let names: Vec<String> = relay.ok("GET", "/channels", &admin, None).await.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["Default", "Night shift"]);
    assert_eq!(channel["id"], 2);
    assert_eq!(relay.ok("GET", "/technicians", &admin, None).await.as_array().unwrap().len(), 7);
    for (id, state) in &acked {
        let v = relay.ok("GET", &format!("/sessions/{id}"), &admin, None).await;
        if *state == "closed" {
            assert_eq!(v["state"], "closed", "session {id}");
        }
        let trail = relay.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
        assert_eq!(trail[0]["action"]["action"], "created", "session {id}");
        if *state == "closed" {
            let actions: Vec<&str> = trail.as_array().unwrap().iter().map(|e| e["action"]["action"].as_str().unwrap()).collect();
            assert_eq!(actions, ["created", "invited", "closed"], "session {id}");
        }
    }
    // No session without its audit event: nothing half-written.
    assert_eq!(orphans(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    let techs = technicians(&relay, &admin, "t", 50).await;
    let relay = std::sync::Arc::new(relay);
    let mut tasks = Vec::new();
    for (i, (me, token)) in techs.iter().cloned().enumerate() {
        let relay = relay.clone();
        let partner = techs[(i + 1) % techs.len()].0;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0..4 {
                let kind = if round % 2 == 0 { "pin" } else { "link" };
                let v = relay.ok("POST", "/channels/1/sessions", &token, Some(json!({"kind": kind, "name": format!("case {me}-{round}")}))).await;
                let id = v["id"].as_i64().unwrap();
                relay.ok("POST", &format!("/sessions/{id}/invite"), &token, Some(json!({"technician_id": partner}))).await;
                if round < 2 {
                    relay.ok("POST", &format!("/sessions/{id}/close"), &token, None).await;
                }
                mine.push(id);
            }
            (me, mine)
        }));
    }
    let mut all_ids = std::collections::HashSet::new();
    for task in tasks {
        let (me, mine) = task.await.unwrap();
        for id in mine {
            assert!(all_ids.insert(id), "session id {id} handed out twice");
            let v = relay.ok("GET", &format!("/sessions/{id}"), &admin, None).await;
            assert_eq!(v["assigned_technician_id"], me);
            assert_eq!(v["invited_technician_ids"].as_array().unwrap().len(), 1);
        }
    }
    assert_eq!(all_ids.len(), 200);
    let listed = relay.ok("GET", "/channels/1/sessions", &admin, None).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 200);
    let live_pins: Vec<&str> = listed.iter().filter_map(|s| s["pin"].as_str()).collect();
    assert_eq!(live_pins.len(), 50, "one live PIN session per technician");
    let unique: std::collections::HashSet<_> = live_pins.iter().collect();
    assert_eq!(unique.len(), live_pins.len(), "live PINs are unique");
    // Each technician's Home: their 4 sessions plus the 4 shared with them.
    let home = relay.ok("GET", "/sessions?scope=home", &techs[7].1, None).await;
    assert_eq!(home.as_array().unwrap().len(), 8);
    assert_eq!(orphans(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_consoles_of_the_channel_only() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    let tech = technicians(&relay, &admin, "watcher", 1).await.remove(0);
    let other = relay.ok("POST", "/channels", &admin, Some(json!({"name": "Elsewhere"}))).await["id"].as_i64().unwrap();
    let outsider = relay.ok("POST", "/technicians", &admin, Some(json!({"username": "outsider", "password": ONE_TIME, "role": "technician"}))).await;
    relay.ok("POST", &format!("/channels/{other}/members"), &admin, Some(json!({"technician_id": outsider["id"]}))).await;
    let outsider_token = relay.first_login("outsider", ONE_TIME).await;

    let subscribe = |token: String| {
        let request = relay.client.get(format!("{}/api/v1/events", relay.base)).bearer_auth(token);
        async move { request.send().await.unwrap().bytes_stream() }
    };
    let mut watcher = subscribe(tech.1.clone()).await;
    let mut outsider_stream = subscribe(outsider_token.clone()).await;
    // Give the subscriptions a moment to be registered before the change happens.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let created = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "pin", "name": "watched"}))).await;
    let mine = relay.ok("POST", &format!("/channels/{other}/sessions"), &outsider_token, Some(json!({"kind": "link"}))).await;

    let event = next_event(&mut watcher).await.expect("an event");
    assert_eq!(event["type"], "session");
    assert_eq!(event["session"]["id"], created["id"]);
    assert_eq!(event["session"]["state"], "waiting");
    // The outsider's first event is about their own session: the other channel's never came.
    let event = next_event(&mut outsider_stream).await.expect("an event");
    assert_eq!(event["session"]["id"], mine["id"]);
}


#[test]
fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(RELAY)
        .args(["serve", "--plain-http", "--http", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only allowed on a loopback address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_is_created_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let create = |password: &str| {
        let mut child = Command::new(RELAY)
            .args(["admin", "create", "--username", "root", "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = create("short");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));
    assert!(create(PASSWORD).status.success());
    let again = create(PASSWORD);
    assert!(!again.status.success(), "the username is taken");

    let relay = Relay::start(dir.path());
    assert_eq!(relay.admin_password, None, "an admin exists: no demo admin is made");
    let token = relay.login("root", PASSWORD).await;
    assert_eq!(relay.ok("GET", "/me", &token, None).await["role"], "admin");
    // The certificate and key were created with the right permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("relay-key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
}


/// Found from outside: after `kill -9` and a restart, sessions still read `active` with consent
/// granted though no app was connected, and the app trying to resume was refused ("another
/// support app is connected with this code"). Now the restarted relay knows no app is
/// connected, and the app gets back in by itself with its consent, without a new prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_app_resumes_by_itself_without_a_new_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (http, quic) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let relay = Relay::start_on(dir.path(), &http, &quic);
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    // Its channel records: the recording survives the crash too.
    relay.ok("PATCH", "/channels/1", &admin, Some(json!({"record_sessions": true}))).await;
    let (id, _app, printed) = shared_session(&relay, &admin, dir.path()).await;
    let show = format!("/sessions/{id}");
    relay.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    wait_until(&relay, &admin, &show, "granted", 20, |v| v["consent"]["status"] == "granted").await;
    let cli = Cli::login(&relay, dir.path(), &relay.fingerprint(&admin).await);
    let viewer = cli.command(&["view", &id.to_string(), "--headless", "--frames", "300", "--timeout", "60"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    relay.kill();
    drop(relay);
    // Same ports, same data: the admin's token is stored, so it still works.
    let relay = Relay::start_on(dir.path(), &http, &quic);
    // Right after the restart: no app is connected, and the session says so.
    let now = relay.ok("GET", &show, &admin, None).await;
    assert_eq!(now["state"], "waiting", "{now}");
    assert_eq!(now["consent"]["status"], "suspended", "consent is kept only for the app's resumption");
    let trail = relay.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
    let last = trail.as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["action"]["action"].as_str(), last["actor"]["kind"].as_str()), (Some("app_disconnected"), Some("system")));
    let asked_before = count_actions(&trail, "remote_requested");

    // The app notices, says so, and is back within 30 s with its consent.
    let back = wait_until(&relay, &admin, &show, "resumed", 30, |v| v["state"] == "active" && v["consent"]["status"] == "granted").await;
    assert_eq!(back["consent"]["grants"][0]["technician_id"], 1);
    let trail = relay.ok("GET", &format!("/sessions/{id}/events"), &admin, None).await;
    assert_eq!(count_actions(&trail, "remote_requested"), asked_before, "the end user was not asked again");
    let reconnected = trail.as_array().unwrap().iter().rev().find(|e| e["action"]["action"] == "app_connected").unwrap();
    assert_eq!(reconnected["action"]["resumed"], true);
    let out = std::fs::read_to_string(&printed).unwrap();
    assert!(out.contains("connection lost; reconnecting"), "the app did not say it was reconnecting:\n{out}");
    // The technician's viewer follows by itself.
    viewer_followed(viewer, "");
    // The file the kill cut short was closed at the restart with the length of what reached
    // the disk; the picture after the resumption is a new recording, closed when the viewer
    // left.
    let path = format!("/sessions/{id}/recordings");
    let ended = |r: &Value| r["ended_at"].is_string() && r["duration_ms"].as_i64().unwrap_or(0) > 0 && r["bytes"].as_i64().unwrap_or(0) > 0;
    let recordings = wait_until(&relay, &admin, &path, "both recordings ended", 20, |v| {
        v.as_array().is_some_and(|l| l.len() >= 2 && l.iter().all(&ended))
    })
    .await;
    let started: Vec<&str> = recordings.as_array().unwrap().iter().map(|r| r["started_at"].as_str().unwrap()).collect();
    assert!(started.windows(2).all(|w| w[0] < w[1]), "{recordings}");
}

fn count_actions(trail: &Value, action: &str) -> usize {
    trail.as_array().unwrap().iter().filter(|e| e["action"]["action"] == action).count()
}


/// The relay's resident memory now and at its peak, in KiB.
fn memory_kib(relay: &Relay) -> (u64, u64) {
    let pid = relay.child.lock().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Found from outside: 60 parallel logins took the relay from 276 MB to 1.27 GB (an argon2 run
/// each), and 16 parallel downloads of the support app cost +390 MB (each read whole). Both
/// are bounded now: password checks wait their turn, downloads stream from the file. Failed
/// logins are logged with the client's address, never with the password tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_floods_and_parallel_downloads_keep_memory_bounded() {
    const MIB: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    // A support app of 128 MiB (sparse: costs no disk).
    let app = dir.path().join("big-agent");
    let mut file = std::fs::File::create(&app).unwrap();
    file.write_all(b"\x7fELF").unwrap();
    file.set_len(128 * 1024 * 1024).unwrap();
    let log = dir.path().join("relay.log");
    let relay = Relay::launch(
        dir.path(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--agent-binary", app.to_str().unwrap()],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    let (_, peak_before) = memory_kib(&relay);

    let guess = "not the password 7rQ";
    let logins = (0..60).map(|i| relay.call("POST", "/login", None, Some(json!({"username": format!("nobody{i}"), "password": guess}))));
    for answer in futures_util::future::join_all(logins).await {
        let status = answer.unwrap().0;
        assert!(status == 401 || status == 429, "{status}");
    }
    let (_, peak) = memory_kib(&relay);
    assert!(peak - peak_before < 200 * MIB, "60 parallel logins raised the peak by {} MiB", (peak - peak_before) / MIB);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("login failed") && logged.contains("127.0.0.1"), "failed logins are not logged with the address:\n{logged}");
    assert!(!logged.contains(guess), "a password tried was logged");

    // Eight downloads at once, none read: each costs a buffer, not the file.
    let session = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "link"}))).await;
    let link = session["link"].as_str().unwrap();
    let page = link.split('#').next().unwrap();
    let (before, _) = memory_kib(&relay);
    let mut downloads = Vec::new();
    for _ in 0..8 {
        let response = relay.client.get(format!("{page}/download")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let expected = 128 * 1024 * 1024 + deskline_protocol::embed::link_trailer(link).unwrap().len() as u64;
        assert_eq!(response.content_length(), Some(expected));
        downloads.push(response);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (during, _) = memory_kib(&relay);
    assert!(during.saturating_sub(before) < 100 * MIB, "8 downloads in progress raised memory by {} MiB", (during - before) / MIB);
    // And a download is whole: the file, then the session's link.
    let body = downloads.pop().unwrap().bytes().await.unwrap();
    let tail = &body[body.len() - 4096..];
    assert_eq!(deskline_protocol::embed::embedded_link(tail).unwrap(), Some(link));
}

/// The database holds password hashes and codes: owner-only, like the directory (found from
/// outside: the files were 0644).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let relay = Relay::start(&data);
    relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    for name in ["deskline.db", "deskline.db-wal", "deskline.db-shm"] {
        let mode = std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}

/// Found from outside: a connection that completed its TLS handshake and sent nothing stayed
/// open for more than 75 s. It is closed after the header timeout now.
#[test]
fn an_idle_https_connection_is_closed() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let (mut tls, mut tcp) = tls_connection(&relay, dir.path());
    // Bounded wait: far longer than the relay's timeout, far shorter than "held forever".
    let limit = deskline_relay::limits::HTTP_FIRST_REQUEST_TIMEOUT * 3;
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    let closed = loop {
        match rustls::Stream::new(&mut tls, &mut tcp).read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => break false,
            Err(_) => break true, // reset or closed without close_notify: closed too
        }
    };
    assert!(closed, "the idle connection was still open after {:?}", started.elapsed());
}

/// One HTTPS connection to the relay, handshake done (its certificate read from `data_dir`).
fn tls_connection(relay: &Relay, data_dir: &Path) -> (rustls::ClientConnection, std::net::TcpStream) {
    let address = relay.base.trim_start_matches("https://").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(data_dir.join("relay-cert.pem")).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_root_certificates(roots).with_no_client_auth();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tcp = std::net::TcpStream::connect(&address).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    (tls, tcp)
}

/// Reads one HTTP/1.1 response (with a Content-Length) off a connection: its status line and
/// headers, lower-cased, and its body; `None` when the connection was closed instead.
fn read_response(stream: &mut impl std::io::Read) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

/// Found by schemathesis: a request answered before its body was read (here a bad token, with
/// a 100 KiB body) made the relay close the kept-alive connection without saying so, and the
/// client's next request on it was lost. The body is read first now and the connection serves
/// the next request; a body over the limit is refused with an answer that says it closes.
#[test]
fn a_request_refused_before_its_body_was_read_keeps_the_connection_usable() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let (mut tls, mut tcp) = tls_connection(&relay, dir.path());
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    let body = format!("{{\"capabilities\": \"{}\"}}", "x".repeat(100 * 1024));
    let request = |body: &str| {
        format!(
            "POST /api/v1/sessions/1/remote HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer not-a-token\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for round in 0..2 {
        stream.write_all(request(&body).as_bytes()).unwrap();
        let (head, answer) = read_response(&mut stream).unwrap_or_else(|| panic!("request {round}: the connection was closed"));
        assert!(head.starts_with("http/1.1 401"), "{head}{answer}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut stream).expect("the kept-alive connection still serves");
    assert!(head.starts_with("http/1.1 200"), "{head}");

    // A body declared over the limit is refused before it is read. (Only its start is sent: a
    // client still writing a megabyte when the relay closes gets a reset, which can discard
    // the answer on its side — a race of the test, not of the relay.)
    let too_large = format!("{{\"capabilities\": \"{}\"}}", "x".repeat(deskline_relay::limits::MAX_REQUEST_BODY));
    let mut head = request(&too_large);
    head.truncate(head.len() - too_large.len() + 64);
    stream.write_all(head.as_bytes()).unwrap_or_default();
    let (head, answer) = read_response(&mut stream).expect("an answer before the close");
    assert!(head.starts_with("http/1.1 413") && head.contains("connection: close"), "{head}");
    assert!(answer.contains("body_too_large"), "{answer}");
}

/// The invite page offers each end user the build/// The invite page offers each end user the build for their system first (found from their
/// browser) and lists the others; each download carries the session's link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_pages_offer_the_visitors_build_first() {
    const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("support.exe");
    std::fs::write(&exe, b"MZ\x90\x00 a Windows build").unwrap();
    let elf = dir.path().join("support-linux");
    std::fs::write(&elf, b"\x7fELF a Linux build").unwrap();
    let args = ["--agent-binary", exe.to_str().unwrap(), "--agent-binary", elf.to_str().unwrap()];
    let relay = Relay::launch(&dir.path().join("data"), "127.0.0.1:0", "127.0.0.1:0", &args, Stdio::null());
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    let session = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "link"}))).await;
    let link = session["link"].as_str().unwrap();
    let page_url = link.split('#').next().unwrap();
    let path = page_url.trim_start_matches(&relay.base);
    let get = |url: String, agent: &'static str| relay.client.get(url).header("user-agent", agent).send();

    let page = get(page_url.to_owned(), WINDOWS).await.unwrap().text().await.unwrap();
    let first = page.find("Download the support app for Windows").unwrap_or_else(|| panic!("{page}"));
    let other = page.find(&format!("href=\"{path}/download/linux\"")).unwrap_or_else(|| panic!("{page}"));
    assert!(first < other, "the visitor's build comes first");
    assert!(page.contains("deskline-support.exe"), "{page}");
    let page = get(page_url.to_owned(), LINUX).await.unwrap().text().await.unwrap();
    assert!(page.contains("Download the support app for Linux") && page.contains(&format!("{path}/download/windows")), "{page}");

    let download = get(format!("{page_url}/download"), WINDOWS).await.unwrap();
    assert!(download.headers()["content-disposition"].to_str().unwrap().contains("deskline-support.exe"));
    let body = download.bytes().await.unwrap();
    assert!(body.starts_with(b"MZ\x90\x00 a Windows build"));
    assert_eq!(deskline_protocol::embed::embedded_link(&body).unwrap(), Some(link));
    let body = get(format!("{page_url}/download/linux"), WINDOWS).await.unwrap().bytes().await.unwrap();
    assert!(body.starts_with(b"\x7fELF a Linux build"));
    assert_eq!(deskline_protocol::embed::embedded_link(&body).unwrap(), Some(link));
    assert_eq!(get(format!("{page_url}/download/macos"), WINDOWS).await.unwrap().status(), 404, "no macOS build offered");

    // A file that is not an executable is refused at start, with its name.
    let text = dir.path().join("readme.txt");
    std::fs::write(&text, "not a program").unwrap();
    let out = Command::new(RELAY)
        .args(["serve", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--agent-binary", text.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("readme.txt: not a Linux, Windows or macOS executable"));
}

/// Issue 15: every `serve` option can come from a config file; flags win over it, and a
/// mistake in the file stops the relay with the file's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_a_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "organisation = \"Config Hospital IT\"\nmax_fps = 24\nhttp = \"127.0.0.1:1\"\n").unwrap();
    // The file's http address would fail to bind: the flag (given by `launch`) wins.
    let relay = Relay::launch(dir.path(), "127.0.0.1:0", "127.0.0.1:0", &["--config", config.to_str().unwrap()], Stdio::null());
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    assert_eq!(relay.ok("GET", "/settings", &admin, None).await["organisation"], "Config Hospital IT");
    drop(relay);

    std::fs::write(&config, "organisation = \"x\"\n\nmax_fps = 600\n").unwrap();
    let out = Command::new(RELAY).args(["serve", "--config", config.to_str().unwrap(), "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("relay.toml: line 3: `max_fps`"), "{stderr}");
    std::fs::write(&config, "quick = \"127.0.0.1:4433\"\n").unwrap();
    let out = Command::new(RELAY).args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("line 1: unknown key `quick`"), "{stderr}");
}

/// Issue 15: an operator's monitoring sees the relay's health and what it does — sessions by
/// state, connected apps and viewers, frames forwarded, consent asked and answered, failed
/// sign-ins, API latency — on a port of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_show_what_the_relay_does() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::launch(dir.path(), "127.0.0.1:0", "127.0.0.1:0", &["--metrics", "127.0.0.1:0"], Stdio::null());
    let metrics_url = relay.metrics.clone().expect("the relay printed where its metrics are");
    let plain = reqwest::Client::new();
    let scrape = async || plain.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    let value = |text: &str, name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' '))).map_or(0.0, |v| v.parse().unwrap())
    };
    // Health: no token, no data.
    let health = relay.client.get(format!("{}/healthz", relay.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    // The public HTTPS port does not serve the metrics.
    assert_eq!(relay.client.get(format!("{}/metrics", relay.base)).send().await.unwrap().status(), 404);

    let (status, _) = relay.call("POST", "/login", None, Some(json!({"username": "admin", "password": "not it"}))).await.unwrap();
    assert_eq!(status, 401);
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "pin"}))).await;
    let text = scrape().await;
    assert_eq!(value(&text, "deskline_failed_logins_total"), 1.0, "{text}");
    assert_eq!(value(&text, "deskline_sessions{state=\"waiting\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "deskline_apps_connected"), 0.0, "{text}");
    assert_eq!(value(&text, "deskline_api_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/login\",status=\"4xx\"}"), 1.0, "{text}");

    // An app shares (in a second session, its channel recording) with a viewer watching: the
    // frames it forwards and the recording's bytes are counted.
    relay.ok("PATCH", "/channels/1", &admin, Some(json!({"record_sessions": true}))).await;
    let (id, _app, _) = shared_session(&relay, &admin, dir.path()).await;
    let show = format!("/sessions/{id}");
    relay.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    wait_until(&relay, &admin, &show, "granted", 20, |v| v["consent"]["status"] == "granted").await;
    let cli = Cli::login(&relay, dir.path(), &relay.fingerprint(&admin).await);
    cli.ok(&["view", &id.to_string(), "--headless", "--frames", "5"]);
    let text = scrape().await;
    assert!(value(&text, "deskline_frames_forwarded_total") >= 5.0, "{text}");
    assert!(value(&text, "deskline_frame_bytes_forwarded_total") > 0.0, "{text}");
    // (The recorder writes on a thread of its own: its count may come a moment later.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut recorded = scrape().await;
    while value(&recorded, "deskline_recording_bytes_written_total") == 0.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        recorded = scrape().await;
    }
    assert!(value(&recorded, "deskline_recordings_started_total") >= 1.0, "{recorded}");
    assert!(value(&recorded, "deskline_recording_bytes_written_total") > 0.0, "{recorded}");
    assert_eq!(value(&text, "deskline_consent_requests_total"), 1.0, "{text}");
    assert_eq!(value(&text, "deskline_consent_answers_total{outcome=\"granted_control\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "deskline_sessions{state=\"active\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "deskline_apps_connected"), 1.0, "{text}");
}


/// Issue 15: `backup` copies a running relay's database under load — an app streaming to a
/// viewer, technicians writing through the API — and the copy restores into a new data
/// directory; a relay started on it has every session and audit event the backup saw. A backup never overwrites a file, a restore never overwrites a database, and a
/// file that is not a Deskline database is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_relay_is_backed_up_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let relay = std::sync::Arc::new(Relay::start(&data));
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    // Sessions made and closed (a technician owns ten open ones at most).
    let made_and_closed = async |relay: &Relay, admin: &str, kind: &str| {
        let id = relay.ok("POST", "/channels/1/sessions", admin, Some(json!({"kind": kind}))).await["id"].clone();
        relay.ok("POST", &format!("/sessions/{id}/close"), admin, None).await;
    };
    for _ in 0..20 {
        made_and_closed(&relay, &admin, "link").await;
    }
    // An app streams to a viewer (it writes the consent and remote-session events).
    let (shared, _app, _) = shared_session(&relay, &admin, dir.path()).await;
    relay.ok("POST", &format!("/sessions/{shared}/remote"), &admin, Some(json!({}))).await;
    wait_until(&relay, &admin, &format!("/sessions/{shared}"), "granted", 20, |v| v["consent"]["status"] == "granted").await;
    let cli = Cli::login(&relay, dir.path(), &relay.fingerprint(&admin).await);
    let viewing = cli.command(&["view", &shared.to_string(), "--headless", "--frames", "90"]).stdout(Stdio::null()).spawn().map(KillOnDrop).unwrap();
    let shared_trail = relay.ok("GET", &format!("/sessions/{shared}/events"), &admin, None).await;
    // Writes go on during the backup.
    let writing = {
        let (relay, admin) = (relay.clone(), admin.clone());
        tokio::spawn(async move {
            for _ in 0..40 {
                made_and_closed(&relay, &admin, "pin").await;
            }
        })
    };
    let copy = dir.path().join("deskline-backup.db");
    let relay_cmd = |args: &[&std::ffi::OsStr]| Command::new(RELAY).args(args).output().unwrap();
    let out = relay_cmd(&["backup".as_ref(), "--data-dir".as_ref(), data.as_os_str(), "--to".as_ref(), copy.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("schema version"));
    writing.await.unwrap();
    let mut viewing = viewing;
    assert!(viewing.0.wait().unwrap().success(), "the viewer got its frames while the backup ran");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600, "the copy is as private as the database");
    // Never over an existing file.
    let again = relay_cmd(&["backup".as_ref(), "--data-dir".as_ref(), data.as_os_str(), "--to".as_ref(), copy.as_os_str()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists"));
    drop(relay);

    // Restored into a new directory (with the certificate beside it), the relay has the data.
    let restored = dir.path().join("restored");
    let out = relay_cmd(&["restore".as_ref(), "--from".as_ref(), copy.as_os_str(), "--data-dir".as_ref(), restored.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["relay-cert.pem", "relay-key.pem"] {
        std::fs::copy(data.join(file), restored.join(file)).unwrap();
    }
    let relay = Relay::start(&restored);
    assert_eq!(relay.admin_password, None, "the admin came back: no new one");
    let admin = relay.login("admin", PASSWORD).await;
    let sessions = relay.ok("GET", "/channels/1/sessions", &admin, None).await;
    let n = sessions.as_array().unwrap().len();
    assert!((21..=61).contains(&n), "the 21 sessions made before the backup, and those of the writes it saw: {n}");
    let trail = relay.ok("GET", &format!("/sessions/{shared}/events"), &admin, None).await;
    let before = shared_trail.as_array().unwrap();
    assert!(before.iter().any(|e| e["action"]["action"] == "consent_decided"), "{shared_trail}");
    assert_eq!(trail.as_array().unwrap().get(..before.len()), Some(&before[..]), "the streamed session's history came back");
    for s in sessions.as_array().unwrap() {
        let trail = relay.ok("GET", &format!("/sessions/{}/events", s["id"]), &admin, None).await;
        assert_eq!(trail[0]["action"]["action"], "created", "each session with its history");
    }
    // Never over a database; never from a file that is not one.
    let out = relay_cmd(&["restore".as_ref(), "--from".as_ref(), copy.as_os_str(), "--data-dir".as_ref(), restored.as_os_str()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already has a database"));
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a database at all, just some text that is long enough").unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let out = relay_cmd(&["restore".as_ref(), "--from".as_ref(), junk.as_os_str(), "--data-dir".as_ref(), elsewhere.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("not a Deskline database"), "{stderr}");
    assert!(!elsewhere.join("deskline.db").exists(), "a refused restore leaves nothing behind");
}

/// A client that trusts only this PEM certificate, with no pooled connection from before.
fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .https_only(true)
        .build()
        .unwrap()
}

/// Issue 15: the operator's own certificate serves HTTPS; after a renewal, SIGHUP (`systemctl
/// reload`) makes new connections see the new one while the app's session, its QUIC side and
/// an open console stream go on. A file that does not load keeps the certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_operators_certificate_without_dropping_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("fullchain.pem"), dir.path().join("privkey.pem"));
    let issue = || {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    };
    let (first, first_key) = issue();
    std::fs::write(&cert_path, &first).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let own = ["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()];
    let mut relay = Relay::launch(&dir.path().join("data"), "127.0.0.1:0", "127.0.0.1:0", &own, Stdio::null());
    relay.client = client_trusting(&first);
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    // The relay's own certificate does not serve HTTPS any more.
    let own_cert = std::fs::read_to_string(dir.path().join("data/relay-cert.pem")).unwrap();
    assert!(client_trusting(&own_cert).get(format!("{}/healthz", relay.base)).send().await.is_err());

    // A sharing app (QUIC, pinned to the relay's own certificate) and a console's live stream.
    let (id, _app, _) = shared_session(&relay, &admin, dir.path()).await;
    let show = format!("/sessions/{id}");
    let mut stream = relay.client.get(format!("{}/api/v1/events", relay.base)).bearer_auth(&admin).send().await.unwrap().bytes_stream();

    // Renewed: new files, SIGHUP.
    let (second, second_key) = issue();
    std::fs::write(&cert_path, &second).unwrap();
    std::fs::write(&key_path, &second_key).unwrap();
    let pid = relay.child.lock().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let healthz = format!("{}/healthz", relay.base);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client_trusting(&second).get(&healthz).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "new connections never saw the new certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client_trusting(&first).get(&healthz).send().await.is_err(), "new connections no longer get the old one");
    assert!(relay.child.lock().unwrap().try_wait().unwrap().is_none(), "SIGHUP does not stop the relay");

    // Nothing dropped: the session is still active with its app, and the open stream still
    // brings news (of a change made through the new certificate).
    relay.client = client_trusting(&second);
    let trail = relay.ok("GET", &format!("{show}/events"), &admin, None).await;
    assert!(!trail.to_string().contains("app_disconnected"), "{trail}");
    assert_eq!(relay.ok("GET", &show, &admin, None).await["state"], "active");
    relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "link"}))).await;
    let news = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt as _;
        loop {
            let chunk = stream.next().await.unwrap().unwrap();
            if String::from_utf8_lossy(&chunk).contains("\"kind\":\"link\"") {
                return;
            }
        }
    })
    .await;
    assert!(news.is_ok(), "the console's stream from before the reload went quiet");

    // A renewal gone wrong (a truncated file) is refused; the certificate in use stays.
    std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(client_trusting(&second).get(&healthz).send().await.is_ok());
    assert!(relay.child.lock().unwrap().try_wait().unwrap().is_none());
}


/// Issue 15: SIGTERM (`systemctl stop`, an upgrade) drains within a named bound: apps and
/// viewers are told goodbye — the app comes back by itself to the restarted relay and resumes
/// without asking the end user again, the viewer says why it ended — and the database is
/// closed cleanly (its write-ahead log merged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_goodbye_and_stops_cleanly_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (http, quic) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let relay = Relay::start_on(&data, &http, &quic);
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    let (id, _app, printed) = shared_session(&relay, &admin, dir.path()).await;
    let show = format!("/sessions/{id}");
    relay.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    wait_until(&relay, &admin, &show, "granted", 20, |v| v["consent"]["status"] == "granted").await;
    let cli = Cli::login(&relay, dir.path(), &relay.fingerprint(&admin).await);
    let viewer = cli.command(&["view", &id.to_string(), "--headless", "--frames", "300", "--timeout", "60"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A console's live stream is open too: it ends at once rather than holding the HTTPS drain.
    let _stream = relay.client.get(format!("{}/api/v1/events", relay.base)).bearer_auth(&admin).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let pid = relay.child.lock().unwrap().id().to_string();
    let asked = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = loop {
        if let Some(status) = relay.child.lock().unwrap().try_wait().unwrap() {
            break status;
        }
        // The bound: goodbyes and the QUIC drain (deskline_relay::limits::SHUTDOWN_QUIC_DRAIN,
        // 2 s), then the HTTPS drain, which nothing holds (its 10 s grace is for stuck requests).
        assert!(asked.elapsed() < Duration::from_secs(7), "the relay did not stop within its bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean stop: {status}");
    let wal = std::fs::metadata(data.join("deskline.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the write-ahead log was merged into the database");

    // Back on the same ports: the app resumes by itself, without a new consent prompt, and the
    // viewer, told the relay was restarting, follows.
    drop(relay);
    let relay = Relay::start_on(&data, &http, &quic);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = relay.ok("GET", &show, &admin, None).await;
        if v["state"] == "active" && v["consent"]["status"] == "granted" {
            break;
        }
        let out = std::fs::read_to_string(&printed).unwrap();
        assert!(std::time::Instant::now() < deadline, "the app did not resume: {v}\nit printed:\n{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trail = relay.ok("GET", &format!("{show}/events"), &admin, None).await;
    assert_eq!(count_actions(&trail, "remote_requested"), 1, "the end user was not asked again");
    let out = std::fs::read_to_string(&printed).unwrap();
    assert!(out.contains("connection lost; reconnecting"), "{out}");
    viewer_followed(viewer, "the relay is restarting");
}

/// A `deskline view --headless --frames 300` started before the relay went away: it said why it
/// lost the relay, joined the restarted one and decoded every frame it wanted (most of them
/// after the restart: the relay went away within a second or two of its start).
fn viewer_followed(viewer: std::process::Child, why: &str) {
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || done_tx.send(viewer.wait_with_output()));
    let out = done.recv_timeout(Duration::from_secs(60)).expect("the viewer did not finish after the restart").unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the viewer did not follow the restart: {said}");
    assert!(said.contains(&format!("lost the relay ({why}")) && said.contains("reconnecting"), "{said}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["frames"].as_u64(), report["reconnects"].as_u64()), (Some(300), Some(1)), "{report}");
}

/// Issue 14 (secrets): a whole session's run — the first admin's one-time password and the one
/// chosen, a wrong password, a link opened and its app downloaded, a wrong PIN, a PIN joined by
/// an app, consent asked and given, frames viewed, sign-out — logged at debug level by the
/// relay, the app and the CLI, and no password, token, link token, PIN or wrong guess appears in
/// any log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log() {
    let dir = tempfile::tempdir().unwrap();
    let relay_log = dir.path().join("relay.log");
    let relay = Relay::launch_logging(
        &dir.path().join("data"),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--agent-binary", agent_binary().to_str().unwrap()],
        Stdio::from(std::fs::File::create(&relay_log).unwrap()),
        "debug",
    );
    let one_time = relay.admin_password.clone().unwrap();
    let first_token = relay.login("admin", &one_time).await;
    let admin = relay.first_login("admin", &one_time).await;
    let wrong_password = "Not-The-Password-4711";
    assert_eq!(relay.call("POST", "/login", None, Some(json!({"username": "admin", "password": wrong_password}))).await.unwrap().0, 401);

    let link = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "link"}))).await;
    let link_url = link["link"].as_str().unwrap().to_owned();
    let link_token = link_url.rsplit('/').next().unwrap().split('#').next().unwrap().to_owned();
    for page in [link_url.split('#').next().unwrap().to_owned(), format!("{}/s/{link_token}/download", relay.base)] {
        let response = relay.client.get(&page).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let _ = response.bytes().await.unwrap();
    }

    let info = relay.ok("GET", "/relay", &admin, None).await;
    let session = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": "pin"}))).await;
    let (id, pin) = (session["id"].as_i64().unwrap(), session["pin"].as_str().unwrap().to_owned());
    let app = |code: &str, out: &Path| {
        Command::new(agent_binary())
            .args(["--pin", code, "--relay", info["quic"].as_str().unwrap(), "--fingerprint", info["fingerprint"].as_str().unwrap()])
            .args(["--synthetic", "320x240", "--auto-consent", "allow"])
            .env("RUST_LOG", "debug")
            .env("XDG_STATE_HOME", dir.path())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let wrong_pin = format!("{:06}", (pin.parse::<u32>().unwrap() + 1) % 1_000_000);
    let mut wrong = app(&wrong_pin, &dir.path().join("wrong.out"));
    assert!(!wrong.0.wait().unwrap().success(), "a wrong PIN is refused");
    let _app = app(&pin, &dir.path().join("app.out"));
    let show = format!("/sessions/{id}");
    wait_until(&relay, &admin, &show, "active", 20, |v| v["state"] == "active").await;
    relay.ok("POST", &format!("/sessions/{id}/remote"), &admin, Some(json!({}))).await;
    wait_until(&relay, &admin, &show, "granted", 20, |v| v["consent"]["status"] == "granted").await;
    let cli = Cli::login(&relay, dir.path(), &relay.fingerprint(&admin).await);
    let viewed = cli.command(&["view", &id.to_string(), "--headless", "--frames", "3"]).env("RUST_LOG", "debug").output().unwrap();
    assert!(viewed.status.success(), "{}", String::from_utf8_lossy(&viewed.stderr));
    let cli_token = serde_json::from_slice::<Value>(&std::fs::read(dir.path().join("cli.json")).unwrap()).unwrap()["token"].as_str().unwrap().to_owned();
    relay.ok("POST", "/logout", &admin, None).await;
    drop(_app);
    drop(relay);

    let mut logs = vec![
        ("relay", std::fs::read_to_string(&relay_log).unwrap()),
        ("app", std::fs::read_to_string(dir.path().join("deskline/agent.log")).unwrap()),
        ("CLI", String::from_utf8_lossy(&viewed.stderr).into_owned()),
    ];
    for out in ["app.out", "wrong.out"] {
        logs.push(("app's output", std::fs::read_to_string(dir.path().join(out)).unwrap()));
    }
    assert!(logs[0].1.contains("DEBUG") && logs[1].1.lines().count() > 3, "debug logs were written: {}", logs[0].1.len());
    let secrets = [
        ("the one-time password", one_time.as_str()),
        ("the chosen password", PASSWORD),
        ("a wrong password", wrong_password),
        ("the first token", first_token.as_str()),
        ("the admin's token", admin.as_str()),
        ("the CLI's token", cli_token.as_str()),
        ("the link token", link_token.as_str()),
    ];
    for (source, text) in &logs {
        for (what, secret) in secrets {
            assert!(!text.contains(secret), "{what} is in the {source}'s log");
        }
        // PINs are digits: look for them as whole numbers, the lines' timestamps left out.
        for line in text.lines() {
            let line = line.split_once(' ').map_or(line, |(first, rest)| if first.contains('T') && first.contains('Z') { rest } else { line });
            for number in line.split(|c: char| !c.is_ascii_digit()) {
                assert!(number != pin && number != wrong_pin, "a PIN is in the {source}'s log: {line}");
            }
        }
    }
}

/// Issue 14 (audit): the audit log is hash-chained. `deskline-relay audit verify` holds on the
/// log a relay wrote, and names the first event edited, or the one after an event removed, by
/// hand in the database file (past the triggers that refuse updates and deletes); undoing the
/// edit makes it hold again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_an_event_edited_or_removed_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let relay = Relay::start(&data);
    let admin = relay.first_login("admin", relay.admin_password.as_deref().unwrap()).await;
    for kind in ["link", "pin", "link"] {
        let id = relay.ok("POST", "/channels/1/sessions", &admin, Some(json!({"kind": kind}))).await["id"].clone();
        relay.ok("POST", &format!("/sessions/{id}/close"), &admin, None).await;
    }
    let verify = || {
        let out = Command::new(RELAY).args(["audit".as_ref(), "verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A running relay's log, read in one snapshot.
    let (ok, said, _) = verify();
    assert!(ok && said.contains("6 events chained") && said.contains("head: event 6, sha256 "), "{said}");
    drop(relay);

    let db = rusqlite::Connection::open(data.join("deskline.db")).unwrap();
    let edit = |sql: &str| db.execute_batch(sql).unwrap();
    assert!(db.execute_batch("UPDATE audit_events SET at = at + 1 WHERE id = 3").is_err(), "the database refuses edits");
    edit("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET at = at + 1 WHERE id = 3");
    let (ok, _, said) = verify();
    assert!(!ok && said.contains("broken at event 3 (session 2)"), "{said}");
    edit("UPDATE audit_events SET at = at - 1 WHERE id = 3");
    assert!(verify().0, "the edit undone, the chain holds");
    edit(r#"UPDATE audit_events SET action = replace(action, '"pin"', '"link"') WHERE id = 3"#);
    assert!(!verify().0, "an edited action breaks the chain");
    edit(r#"UPDATE audit_events SET action = replace(action, '"link"', '"pin"') WHERE id = 3"#);
    assert!(verify().0);
    edit("DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE id = 4");
    let (ok, _, said) = verify();
    assert!(!ok && said.contains("broken at event 5") && said.contains("events 4 to 4 before it are missing"), "{said}");
}
