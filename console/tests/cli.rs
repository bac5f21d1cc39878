//! The `deskline` binary against a real relay (HTTPS, self-signed, pinned) on loopback.
#![allow(clippy::unwrap_used)]

use deskline_relay::server::{Prepared, ServeOptions};
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
    admin_password: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn relay() -> Env {
    deskline_relay::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        data_dir: dir.path().join("relay"),
        http: "127.0.0.1:0".parse().unwrap(),
        quic: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        plain_http: false,
        demo_admin: Some("admin".into()),
        organisation: "Example IT".into(),
    };
    let prepared = Prepared::new(&options).unwrap();
    let server = prepared.base_url().unwrap();
    let fingerprint = prepared.fingerprint();
    let admin_password = prepared.admin_password.clone().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(prepared.run(async move {
        let _ = stopped.await;
    }));
    Env { config: dir.path().join("cli.json"), _dir: dir, server, fingerprint, admin_password, _stop: stop }
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
    assert!(link["link"].as_str().unwrap().starts_with(&format!("{}/s/", env.server)));
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
