//! Helpers shared by the tests that run the real binaries: an X server (Xvfb), the relay,
//! the technician's CLI, and pictures.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of another workspace crate, next to this test's own target directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} is not built: run `cargo test --workspace`", path.display());
    path
}

/// Kills its process when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Desktop {
    pub display: String,
    _xvfb: Guard,
}

pub fn start_xvfb() -> Desktop {
    // Xvfb picks a free display number itself (stale lock files of killed servers included)
    // and writes it to the given descriptor once it accepts connections.
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-noreset", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt-get install xvfb)");
    let mut line = String::new();
    BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let n: u32 = line.trim().parse().unwrap_or_else(|_| panic!("Xvfb did not start: {line:?}"));
    std::thread::sleep(Duration::from_millis(300));
    Desktop { display: format!(":{n}"), _xvfb: Guard(xvfb) }
}

impl Desktop {
    pub fn x(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program).args(args).env("DISPLAY", &self.display).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The X clipboard's text (empty if nobody owns it).
    pub fn clipboard(&self) -> String {
        let out = Command::new("xclip").args(["-selection", "clipboard", "-o"]).env("DISPLAY", &self.display).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies `text` as a program on the end user's desktop does (xclip keeps serving it in
    /// the background until another program copies).
    pub fn copy(&self, text: &str) {
        use std::io::Write as _;
        let mut xclip = Command::new("xclip")
            .args(["-selection", "clipboard", "-i"])
            .env("DISPLAY", &self.display)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        xclip.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(xclip.wait().unwrap().success());
    }

    pub fn spawn_x(&self, program: &str, args: &[&str]) -> Guard {
        Guard(Command::new(program).args(args).env("DISPLAY", &self.display).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
    }

    pub fn try_window(&self, name: &str) -> Option<String> {
        self.try_window_within(name, Duration::from_secs(20))
    }

    /// The first visible window named `name` within `wait`.
    pub fn try_window_within(&self, name: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            // (Visible ones only: toolkits keep hidden helper windows of the same name.)
            let out = Command::new("xdotool").args(["search", "--onlyvisible", "--name", name]).env("DISPLAY", &self.display).output().unwrap();
            if let Some(id) = String::from_utf8_lossy(&out.stdout).lines().next() {
                return Some(id.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn window(&self, name: &str) -> String {
        self.try_window(name).unwrap_or_else(|| panic!("no window named {name:?}"))
    }
}

pub struct Relay {
    _process: Guard,
    pub server: String,
    pub quic: String,
    pub fingerprint: String,
    pub password: String,
}

pub fn start_relay(dir: &Path) -> Relay {
    start_relay_with(dir, &[])
}

/// The relay with more arguments for `serve`.
pub fn start_relay_with(dir: &Path, extra: &[&str]) -> Relay {
    let mut child = Command::new(workspace_bin("deskline-relay"))
        .args(["serve", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--demo-admin", "admin", "--organisation", "Example IT", "--data-dir"])
        .arg(dir.join("relay"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut fingerprint, mut quic, mut server) = (String::new(), String::new(), String::new(), String::new());
    while quic.is_empty() || server.is_empty() {
        let line = lines.next().expect("relay output").unwrap();
        if let Some(p) = line.split("one-time password: ").nth(1) {
            password = p.trim().to_owned();
        }
        if line.starts_with("relay certificate SHA-256") {
            fingerprint = line.rsplit(' ').next().unwrap().to_owned();
        }
        if let Some(q) = line.strip_prefix("QUIC (support apps and viewers): ") {
            quic = q.to_owned();
        }
        if let Some(url) = line.strip_prefix("web console: ") {
            server = url.trim_end_matches('/').to_owned();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Relay { _process: Guard(child), server, quic, fingerprint, password }
}

pub struct Cli {
    pub config: PathBuf,
}

impl Cli {
    pub fn run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(workspace_bin("deskline"))
            .args(args)
            .env("DESKLINE_CONFIG", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, "");
        assert!(ok, "deskline {args:?}: {err}");
        out
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn wait_for(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.json(&["session", "show", id]);
            if check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "session {id} never reached {what}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn pixel(png_path: &Path, x: usize, y: usize) -> [u8; 3] {
    let mut reader = png::Decoder::new(BufReader::new(std::fs::File::open(png_path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let i = (y * info.width as usize + x) * 3;
    [buf[i], buf[i + 1], buf[i + 2]]
}

pub fn close_to(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 20)
}

/// What the admin sets at the first sign-in (the relay's printed password is one-time).
pub const ADMIN_PASSWORD: &str = "lantern orbit seven meadow";

/// Signs the CLI in as the demo admin: the printed one-time password on the first line, the
/// admin's own ([`ADMIN_PASSWORD`]) on the second.
pub fn login(relay: &Relay, dir: &Path) -> Cli {
    let cli = Cli { config: dir.join("cli.json") };
    let (ok, _, err) = cli.run(
        &["login", "--server", &relay.server, "--username", "admin", "--password-stdin", "--insecure-pin-cert", &relay.fingerprint],
        &format!("{}\n{ADMIN_PASSWORD}\n", relay.password),
    );
    assert!(ok, "{err}");
    cli
}

/// Saves a screenshot of a window when `DESKLINE_SCREENSHOTS` names a directory (for docs/).
pub fn screenshot(desktop: &Desktop, window: &str, name: &str) {
    if let Some(dir) = std::env::var_os("DESKLINE_SCREENSHOTS") {
        let path = PathBuf::from(dir).join(name);
        desktop.x("import", &["-window", window, path.to_str().unwrap()]);
    }
}

/// Presses `key` in `window` (after clicking into an empty spot of it when `click_first`, as
/// an end user does once another window took the focus) until the session's consent status
/// reads `status`; whether it did within 30 s.
pub fn press_until(desktop: &Desktop, window: &str, key: &str, click_first: bool, cli: &Cli, id: &str, status: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if click_first {
            desktop.x("xdotool", &["mousemove", "--window", window, "560", "20", "click", "1"]);
        }
        desktop.x("xdotool", &["windowfocus", "--sync", window, "key", key]);
        std::thread::sleep(Duration::from_millis(400));
        if cli.json(&["session", "show", id])["consent"]["status"] == status {
            return true;
        }
    }
    false
}

/// Waits for `deskline clipboard ID receive` while the end user copies `{prefix}{n}` again and
/// again (until the technician waiting has joined and got one); what the CLI said (`ok`,
/// stdout, stderr).
pub fn receive_copied(cli: &Cli, desktop: &Desktop, id: &str, prefix: &str) -> (bool, String, String) {
    std::thread::scope(|s| {
        let waiting = s.spawn(|| cli.run(&["clipboard", id, "receive", "--timeout", "20"], ""));
        for n in 0.. {
            std::thread::sleep(Duration::from_millis(700));
            if waiting.is_finished() {
                break;
            }
            desktop.copy(&format!("{prefix}{n}"));
        }
        waiting.join().unwrap()
    })
}

/// How a file dialog is found and answered: its window's name, the keys that open its path
/// field, the path as that system writes it.
pub struct Dialog<'a> {
    pub name: &'a str,
    pub keys_first: &'a [&'a str],
    pub path: &'a str,
}

/// The end user sends a file from the session bar: "Send a file to the technician" (Alt+F;
/// clicked into the bar first when `click_first`) opens the system's file dialog, and the
/// file's path is typed into it, while `deskline session receive` waits (saving in `inbox`).
/// What the CLI said (`ok`, stdout, stderr).
pub fn send_with_dialog(desktop: &Desktop, window: &str, click_first: bool, cli: &Cli, id: &str, inbox: &Path, dialog: &Dialog) -> (bool, String, String) {
    std::thread::scope(|s| {
        let waiting = s.spawn(|| cli.run(&["--json", "session", "receive", id, inbox.to_str().unwrap(), "--timeout", "60"], ""));
        // (An offer made before the technician waits is refused.)
        std::thread::sleep(Duration::from_millis(1500));
        let deadline = Instant::now() + Duration::from_secs(30);
        let opened = loop {
            if click_first {
                desktop.x("xdotool", &["mousemove", "--window", window, "560", "20", "click", "1"]);
            }
            // (Pressed again if it was lost while the window took the focus: a second Alt+F
            // while the dialog is open does nothing.)
            desktop.x("xdotool", &["windowfocus", "--sync", window, "key", "alt+f"]);
            if let Some(opened) = desktop.try_window_within(dialog.name, Duration::from_secs(3)) {
                break opened;
            }
            assert!(Instant::now() < deadline, "Alt+F opened no window named {:?}", dialog.name);
        };
        std::thread::sleep(Duration::from_millis(1000));
        screenshot(desktop, &opened, &format!("file-dialog-{}.png", dialog.name.replace(' ', "-").to_lowercase()));
        for key in dialog.keys_first {
            desktop.x("xdotool", &["windowfocus", "--sync", &opened, "key", key]);
            std::thread::sleep(Duration::from_millis(300));
        }
        desktop.x("xdotool", &["windowfocus", "--sync", &opened, "type", "--delay", "20", dialog.path]);
        std::thread::sleep(Duration::from_millis(300));
        desktop.x("xdotool", &["windowfocus", "--sync", &opened, "key", "Return"]);
        waiting.join().unwrap()
    })
}
