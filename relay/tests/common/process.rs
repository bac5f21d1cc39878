//! The real relay binary (and the support app, the CLI) as processes on loopback: what the
//! server and relay-node tests start.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const RELAY: &str = env!("CARGO_BIN_EXE_deskline-relay");

pub struct Relay {
    pub child: std::sync::Mutex<Child>,
    pub base: String,
    pub client: reqwest::Client,
    /// The one-time admin password, on the first start of a data directory.
    pub admin_password: Option<String>,
    /// `http://ADDR/metrics`, when started with `--metrics`.
    pub metrics: Option<String>,
}

impl Relay {
    pub fn start(data_dir: &Path) -> Relay {
        Relay::start_on(data_dir, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// Starts on these HTTPS and QUIC addresses (a restart on the same ports).
    pub fn start_on(data_dir: &Path, http: &str, quic: &str) -> Relay {
        Relay::launch(data_dir, http, quic, &[], Stdio::null())
    }

    /// Starts with extra `serve` arguments, its log (warnings and errors) going to `log`.
    pub fn launch(data_dir: &Path, http: &str, quic: &str, extra: &[&str], log: Stdio) -> Relay {
        Relay::launch_logging(data_dir, http, quic, extra, log, "warn")
    }

    /// [`Relay::launch`] with this `RUST_LOG` filter.
    pub fn launch_logging(data_dir: &Path, http: &str, quic: &str, extra: &[&str], log: Stdio, filter: &str) -> Relay {
        let mut child = Command::new(RELAY)
            .args(["serve", "--http", http, "--quic", quic, "--demo-admin", "admin", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut admin_password, mut base, mut metrics) = (None, String::new(), None);
        // Up to the last line it prints at start.
        loop {
            let line = lines.next().expect("relay exited before listening").unwrap();
            if let Some(rest) = line.split("one-time password: ").nth(1) {
                admin_password = Some(rest.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("web console: ") {
                base = url.trim_end_matches('/').to_owned();
            }
            if let Some(url) = line.strip_prefix("metrics (Prometheus): ") {
                metrics = Some(url.to_owned());
            }
            if line.starts_with("session links are built on") {
                break;
            }
        }
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let pem = std::fs::read(data_dir.join("relay-cert.pem")).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .https_only(true)
            .build()
            .unwrap();
        Relay { child: std::sync::Mutex::new(child), base, client, admin_password, metrics }
    }

    /// SIGKILL, while clients may still be talking to it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Result<(u16, Value), reqwest::Error> {
        let mut req = self.client.request(method.parse().unwrap(), format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    pub async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, Some(token), body).await.unwrap();
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let v = self.call("POST", "/login", None, Some(json!({"username": username, "password": password}))).await.unwrap().1;
        v["token"].as_str().unwrap_or_else(|| panic!("login failed: {v}")).to_owned()
    }

    /// The relay's QUIC certificate fingerprint (what apps and viewers pin).
    pub async fn fingerprint(&self, token: &str) -> String {
        self.ok("GET", "/relay", token, None).await["fingerprint"].as_str().unwrap().to_owned()
    }

    /// Signs in with a one-time password (the demo admin's, one an admin gave) and sets
    /// [`PASSWORD`]; returns the token.
    pub async fn first_login(&self, username: &str, one_time: &str) -> String {
        let token = self.login(username, one_time).await;
        let body = json!({"current_password": one_time, "new_password": PASSWORD});
        self.ok("POST", "/me/password", &token, Some(body)).await["token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub const PASSWORD: &str = "a long enough password";

/// The next Server-Sent Event's JSON data.
pub async fn next_event<S>(stream: &mut S) -> Result<Value, tokio::time::error::Elapsed>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt as _;
    let read = async {
        let mut buf = String::new();
        loop {
            let chunk = stream.next().await.unwrap().unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(data) = buf.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str::<Value>(data.trim()).unwrap();
            }
        }
    };
    // A bound so a broken stream fails the test instead of hanging it; not a speed check.
    tokio::time::timeout(Duration::from_secs(20), read).await
}

/// A free loopback port for TCP and UDP alike (bound and let go: the relay binds it next).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The support app binary, built beside this test's.
pub fn agent_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("deskline-agent");
    assert!(path.exists(), "{} is not built: run `cargo test --workspace`", path.display());
    path
}

/// Polls `path` until `check` holds, for `secs` seconds at most.
pub async fn wait_until(relay: &Relay, token: &str, path: &str, what: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = relay.ok("GET", path, token, None).await;
        if check(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{path} never reached: {what}; last: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new PIN session joined by the synthetic support app (which allows what it is asked), its
/// output going to `dir/app.out`: the session's id, the app, and where it prints.
pub async fn shared_session(relay: &Relay, admin: &str, dir: &Path) -> (i64, KillOnDrop, std::path::PathBuf) {
    let session = relay.ok("POST", "/channels/1/sessions", admin, Some(json!({"kind": "pin"}))).await;
    let id = session["id"].as_i64().unwrap();
    let info = relay.ok("GET", "/relay", admin, None).await;
    let printed = dir.join("app.out");
    let app = Command::new(agent_binary())
        .args(["--pin", session["pin"].as_str().unwrap(), "--relay", info["quic"].as_str().unwrap()])
        .args(["--fingerprint", info["fingerprint"].as_str().unwrap(), "--synthetic", "320x240", "--auto-consent", "allow"])
        .env("RUST_LOG", "warn")
        .env("XDG_STATE_HOME", dir)
        .stdout(std::fs::File::create(&printed).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    wait_until(relay, admin, &format!("/sessions/{id}"), "active", 20, |v| v["state"] == "active").await;
    (id, app, printed)
}

/// Kills a child process when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The technicians' CLI (`deskline`), signed in as the admin (whose own password is set).
pub struct Cli {
    pub config: std::path::PathBuf,
}

impl Cli {
    pub fn login(relay: &Relay, dir: &Path, fingerprint: &str) -> Cli {
        let cli = Cli { config: dir.join("cli.json") };
        let args = ["login", "--server", &relay.base, "--username", "admin", "--password-stdin", "--insecure-pin-cert", fingerprint];
        let mut child = cli.command(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "deskline login: {}", String::from_utf8_lossy(&out.stderr));
        cli
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(agent_binary().with_file_name("deskline"));
        command.args(args).env("DESKLINE_CONFIG", &self.config);
        command
    }

    pub fn ok(&self, args: &[&str]) {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "deskline {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
