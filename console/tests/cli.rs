//! The `deskline` binary against a real relay (HTTPS, self-signed, pinned) on loopback.
#![allow(clippy::unwrap_used)]

use deskline_relay::server::LocalRelay;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const DESKLINE: &str = env!("CARGO_BIN_EXE_deskline");
const PASSWORD: &str = "a long enough password";

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    server: String,
    fingerprint: String,
    quic: std::net::SocketAddr,
    admin_password: String,
    _relay: LocalRelay,
}

async fn relay() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path().join("relay"), "Example IT").unwrap();
    Env {
        config: dir.path().join("cli.json"),
        server: relay.base_url.clone(),
        fingerprint: relay.fingerprint.clone(),
        quic: relay.quic,
        admin_password: relay.admin_password.clone(),
        _dir: dir,
        _relay: relay,
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Env {
    /// Runs `deskline ARGS` with `stdin`, off the async runtime.
    async fn run(&self, args: &[&str], stdin: &str) -> Out {
        let mut cmd = Command::new(DESKLINE);
        cmd.args(args).env("DESKLINE_CONFIG", &self.config).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            Out {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "").await;
        assert!(out.ok, "deskline {args:?} failed: {}", out.stderr);
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    async fn login(&self, username: &str, password: &str) -> Out {
        let args = ["login", "--server", &self.server, "--username", username, "--password-stdin", "--insecure-pin-cert", &self.fingerprint];
        self.run(&args, &format!("{password}\n")).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_runs_the_desk_from_the_command_line() {
    let env = relay().await;
    let login = env.login("admin", &env.admin_password.clone()).await;
    assert!(login.ok, "{}", login.stderr);
    assert!(login.stdout.contains("logged in as admin"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&env.config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }

    for name in ["bob", "carol", "dan"] {
        let out = env.run(&["technicians", "create", "--username", name], &format!("{PASSWORD}\n")).await;
        assert!(out.ok, "{}", out.stderr);
        env.ok(&["channels", "add-member", "Default", name]).await;
    }
    let tier2 = env.json(&["channels", "create", "--name", "Tier 2", "--session-expiry", "7200"]).await;
    assert_eq!(tier2["session_expiry_secs"], 7200);

    let link = env.json(&["session", "new", "--channel", "Default", "--link", "--name", "VPN"]).await;
    let url = link["link"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/s/", env.server)), "{url}");
    assert!(url.ends_with(&format!("&sha256={}", env.fingerprint)), "the link carries the certificate to pin: {url}");
    let out = env.ok(&["session", "new", "--channel", "Default", "--pin"]).await;
    assert!(out.starts_with("created session 2: PIN "), "{out}");

    let home = env.ok(&["sessions", "list", "--home"]).await;
    assert_eq!(home.lines().count(), 3, "a header and two sessions:\n{home}");
    assert!(home.lines().next().unwrap().starts_with("ID  CHANNEL  STATE"));

    env.ok(&["session", "invite", "1", "bob"]).await;
    env.ok(&["session", "invite", "1", "carol"]).await;
    let fourth = env.run(&["session", "invite", "1", "dan"], "").await;
    assert!(!fourth.ok, "a fourth technician is refused");
    assert!(fourth.stderr.contains("at most 3 technicians"), "{}", fourth.stderr);
    assert!(fourth.stderr.contains("too_many_technicians"));

    let moved = env.json(&["session", "transfer", "1", "--channel", "Tier 2"]).await;
    assert_eq!(moved["channel_id"], tier2["id"]);
    assert!(moved["assigned_technician_id"].is_null());
    let release = env.run(&["session", "release", "1"], "").await;
    assert!(!release.ok);
    assert!(release.stderr.contains("nobody is assigned"), "{}", release.stderr);
    assert!(env.ok(&["session", "close", "1"]).await.contains("session 1 closed"));
    env.ok(&["session", "delete", "1"]).await;
    let gone = env.run(&["session", "show", "1"], "").await;
    assert!(!gone.ok && gone.stderr.contains("not found"));

    let events = env.ok(&["session", "events", "1"]).await;
    let actions: Vec<&str> = events.lines().skip(1).map(|l| l.split_whitespace().nth(3).unwrap()).collect();
    assert_eq!(actions, ["created", "invited", "invited", "transferred_to_channel", "closed", "deleted"]);
    let remote = env.run(&["session", "remote", "2"], "").await;
    assert!(!remote.ok && remote.stderr.contains("needs an active session"), "{}", remote.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_or_password_fails_clearly_and_saves_nothing() {
    let env = relay().await;
    let wrong_fp = "00".repeat(32);
    let args = ["login", "--server", &env.server, "--username", "admin", "--password-stdin", "--insecure-pin-cert", &wrong_fp];
    let out = env.run(&args, &format!("{}\n", env.admin_password)).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("cannot reach the relay") && out.stderr.contains("certificate"), "{}", out.stderr);
    // Without a pin, the self-signed certificate is not trusted either.
    let args = ["login", "--server", &env.server, "--username", "admin", "--password-stdin"];
    let out = env.run(&args, &format!("{}\n", env.admin_password)).await;
    assert!(!out.ok && out.stderr.contains("UnknownIssuer"), "{}", out.stderr);
    let out = env.login("admin", "not the password").await;
    assert!(!out.ok && out.stderr.contains("wrong username or password"), "{}", out.stderr);
    assert!(!env.config.exists(), "no token saved after failed logins");
    let out = env.run(&["sessions", "list"], "").await;
    assert!(!out.ok && out.stderr.contains("deskline login"), "{}", out.stderr);
    let bad = env.run(&["login", "--server", "ftp://x", "--username", "a", "--password-stdin"], "pw\n").await;
    assert!(!bad.ok && bad.stderr.contains("https://"));
}

/// Starts the support app's connection logic with the synthetic source, answering consent
/// requests with `answer`; returns what it injected.
async fn synthetic_app(env: &Env, pin: &str, answer: deskline_agent::ScriptedAnswer) -> deskline_agent::RecordingSink {
    use deskline_agent::{AgentConfig, RecordingSink, ScriptedPrompt, SyntheticSource, register};
    let config = AgentConfig {
        relay: env.quic,
        server_name: "localhost".into(),
        fingerprint: Some(deskline_net::tls::parse_fingerprint(&env.fingerprint).unwrap()),
        code: deskline_protocol::AppCode::Pin(pin.parse().unwrap()),
    };
    let info = deskline_protocol::AppInfo { os: "test".into(), host_name: "pc".into(), app_version: "0".into(), displays: vec![] };
    let registered = register(&config, info, None).await.unwrap();
    let sink = RecordingSink::default();
    let prompt = std::sync::Arc::new(ScriptedPrompt { answer, delay: std::time::Duration::ZERO });
    let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
    let (_, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let source = || SyntheticSource::new(320, 240);
    let recorded = sink.clone();
    tokio::spawn(async move {
        let _keep = _events_rx;
        let _ = registered.serve(source, sink, prompt, deskline_agent::grants::Grants::default(), events, commands_rx).await;
    });
    recorded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_view_and_input_from_the_command_line() {
    let env = relay().await;
    assert!(env.login("admin", &env.admin_password.clone()).await.ok);
    let allowed = env.json(&["session", "new", "--channel", "Default", "--pin"]).await;
    let denied = env.json(&["session", "new", "--channel", "Default", "--pin"]).await;
    let sink = synthetic_app(&env, allowed["pin"].as_str().unwrap(), deskline_agent::ScriptedAnswer::AllowAll).await;
    let _denied_sink = synthetic_app(&env, denied["pin"].as_str().unwrap(), deskline_agent::ScriptedAnswer::Deny).await;

    for (session, granted) in [(&allowed, "granted"), (&denied, "none")] {
        let id = session["id"].to_string();
        let out = env.ok(&["session", "remote", &id]).await;
        assert!(out.contains("asked the end user"), "{out}");
        let mut status = Value::Null;
        for _ in 0..100 {
            status = env.json(&["session", "show", &id]).await["consent"]["status"].clone();
            if status == granted {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, granted);
    }

    let png = env._dir.path().join("last.png");
    let id = allowed["id"].to_string();
    let out = env.run(&["view", &id, "--headless", "--frames", "10", "--save-last", png.to_str().unwrap()], "").await;
    assert!(out.ok, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["frames"], 10);
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(320), Some(240)));
    assert!(report["latency_capture_to_decoded"]["p50_us"].as_u64().is_some());
    let decoded = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
    assert_eq!((decoded.info().width, decoded.info().height), (320, 240));

    for args in [vec!["move", "12", "34"], vec!["click", "right"], vec!["key", "Enter"], vec!["type", "héllo"]] {
        let mut all = vec!["input", id.as_str()];
        all.extend(args);
        env.ok(&all).await;
    }
    let bad_key = env.run(&["input", &id, "key", "enter"], "").await;
    assert!(!bad_key.ok && bad_key.stderr.contains("unknown key code"), "{}", bad_key.stderr);
    let mut events = Vec::new();
    for _ in 0..100 {
        events = sink.events();
        if events.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    use deskline_protocol::{InputEvent, KeyCode, MouseButton, Press};
    assert_eq!(
        events,
        vec![
            InputEvent::PointerMove { x: 12, y: 34 },
            InputEvent::Button { button: MouseButton::Right, press: Press::Down },
            InputEvent::Button { button: MouseButton::Right, press: Press::Up },
            InputEvent::Key { code: KeyCode::Enter, press: Press::Down, text: None },
            InputEvent::Key { code: KeyCode::Enter, press: Press::Up, text: None },
            InputEvent::Text { text: "héllo".into() },
        ]
    );

    // Consent denied: no frame is shown, and the command says so.
    let id = denied["id"].to_string();
    let out = env.run(&["view", &id, "--headless", "--frames", "5", "--timeout", "2"], "").await;
    assert!(!out.ok);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["frames"], 0);
    assert!(out.stderr.contains("not allowed viewing"), "{}", out.stderr);
    let input = env.run(&["input", &id, "click"], "").await;
    assert!(!input.ok && input.stderr.contains("not granted control"), "{}", input.stderr);
}
