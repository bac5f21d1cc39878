//! The `deskline` binary against a real relay (HTTPS, self-signed, pinned) on loopback.
#![allow(clippy::unwrap_used)]

use deskline_api::{ChannelView, SessionView, Settings, TechnicianView};
use deskline_relay::server::LocalRelay;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DESKLINE: &str = env!("CARGO_BIN_EXE_deskline");
/// What the admin gives new technicians: good for their first sign-in only.
const ONE_TIME_PASSWORD: &str = "a long enough password";
/// What a technician sets at their first sign-in.
const PASSWORD: &str = "lantern orbit seven meadow";
/// Another strong password, for changes and resets.
const OTHER_PASSWORD: &str = "violet canyon drift anchor";

struct Env {
    dir: tempfile::TempDir,
    /// The admin's CLI (`LocalRelay`'s admin password is not one-time).
    admin: Cli,
    quic: std::net::SocketAddr,
    admin_password: String,
    _relay: LocalRelay,
}

async fn relay() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path().join("relay"), "Example IT").unwrap();
    let admin = Cli { config: dir.path().join("cli.json"), server: relay.base_url.clone(), fingerprint: relay.fingerprint.clone() };
    Env { admin, quic: relay.quic, admin_password: relay.admin_password.clone(), dir, _relay: relay }
}

impl Env {
    /// The CLI with a saved login of its own (nothing saved yet).
    fn cli(&self, name: &str) -> Cli {
        Cli { config: self.dir.path().join(format!("{name}.json")), ..self.admin.clone() }
    }

    /// The admin creates `name` (a member of Default) with a one-time password; they sign in
    /// and set [`PASSWORD`] as their own. Their CLI, signed in.
    async fn technician(&self, name: &str) -> Cli {
        let created = self.admin.run(&["technicians", "create", "--username", name], &format!("{ONE_TIME_PASSWORD}\n")).await;
        assert!(created.ok, "{}", created.stderr);
        self.admin.ok(&["channels", "add-member", "Default", name]).await;
        let cli = self.cli(name);
        let login = cli.login(name, &format!("{ONE_TIME_PASSWORD}\n{PASSWORD}\n")).await;
        assert!(login.ok, "{}", login.stderr);
        cli
    }
}

/// The `deskline` command with one saved login.
#[derive(Clone)]
struct Cli {
    config: PathBuf,
    server: String,
    fingerprint: String,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    /// Runs `deskline ARGS` with `stdin`, off the async runtime.
    async fn run(&self, args: &[&str], stdin: &str) -> Out {
        self.run_with(&self.config, args, stdin).await
    }

    /// Runs `deskline ARGS` with the saved login at `config`.
    async fn run_with(&self, config: &Path, args: &[&str], stdin: &str) -> Out {
        let mut cmd = Command::new(DESKLINE);
        cmd.args(args).env("DESKLINE_CONFIG", config).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut child = cmd.spawn().unwrap();
            // A command that fails early may not read its input.
            let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
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

    /// Runs `deskline ARGS` with its standard output already closed, as when it is piped into
    /// `head -1` that has read its line: how it ended and what it said on standard error.
    async fn run_into_closed_pipe(&self, args: &[&str]) -> (std::process::ExitStatus, String) {
        let mut cmd = Command::new(DESKLINE);
        cmd.args(args).env("DESKLINE_CONFIG", &self.config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            drop(child.stdout.take());
            let out = child.wait_with_output().unwrap();
            (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
        })
        .await
        .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "").await;
        assert!(out.ok, "deskline {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs a command that must fail; its error output.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, "").await;
        assert!(!out.ok, "deskline {args:?} succeeded: {}", out.stdout);
        out.stderr
    }

    /// `deskline --json ARGS`, read as the API's type.
    async fn json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    /// `deskline login --password-stdin` with these lines on standard input.
    async fn login(&self, username: &str, stdin: &str) -> Out {
        let args = ["login", "--server", &self.server, "--username", username, "--password-stdin", "--insecure-pin-cert", &self.fingerprint];
        self.run(&args, stdin).await
    }
}

/// The code an authenticator app holding `secret` shows `ahead` seconds from now.
fn authenticator_code(secret: &str, ahead: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    deskline_relay::second_factor::code_at(secret, now + ahead).unwrap()
}

/// `deskline second-factor enable` as a technician runs it: the password, then — once the
/// secret is shown — the code the app shows. Returns the secret and what was printed.
async fn enable_second_factor(cli: &Cli) -> (String, Out) {
    let mut cmd = Command::new(DESKLINE);
    cmd.args(["second-factor", "enable"]).env("DESKLINE_CONFIG", &cli.config);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        use std::io::{BufRead as _, Write as _};
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{PASSWORD}").unwrap();
        let mut shown = String::new();
        let mut secret = None;
        for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            shown.push_str(&line);
            shown.push('\n');
            if let Some(s) = line.strip_prefix("secret: ") {
                secret = Some(s.to_owned());
                writeln!(stdin, "{}", authenticator_code(s, 0)).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let out = Out { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: shown };
        (secret.unwrap_or_else(|| panic!("no secret shown: {}", out.stderr)), out)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_is_set_up_and_used_from_the_command_line() {
    let env = relay().await;
    assert!(env.admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let bob = env.technician("bob").await;

    // Set up: a QR code drawn in the terminal, then recovery codes; other sign-ins end.
    let earlier = env.dir.path().join("bob-earlier.json");
    std::fs::copy(&bob.config, &earlier).unwrap();
    let (secret, out) = enable_second_factor(&bob).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("Scan this with an authenticator app") && out.stderr.contains('█'), "{}", out.stderr);
    assert!(out.stdout.contains("second factor on"), "{}", out.stdout);
    let codes: Vec<&str> = out.stdout.lines().filter_map(|l| l.strip_prefix("  ")).collect();
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    bob.ok(&["sessions", "list"]).await;
    assert!(!bob.run_with(&earlier, &["sessions", "list"], "").await.ok, "the earlier token ended");
    assert_eq!(cell(&env.admin.ok(&["technicians", "list"]).await, "STATUS", "2"), "active, second factor");

    // Signing in needs a code: none given is a clear refusal and saves nothing.
    let elsewhere = env.cli("bob-elsewhere");
    let out = elsewhere.login("bob", &format!("{PASSWORD}\n")).await;
    assert!(!out.ok && out.stderr.contains("signs in with a second factor"), "{}", out.stderr);
    assert!(!elsewhere.config.exists());
    let out = elsewhere.login("bob", &format!("{PASSWORD}\n000000x\n")).await;
    assert!(!out.ok && out.stderr.contains("wrong_second_factor"), "{}", out.stderr);
    let args = ["login", "--server", &bob.server, "--username", "bob", "--password-stdin", "--insecure-pin-cert", &bob.fingerprint];
    let code = authenticator_code(&secret, 30);
    let out = elsewhere.run(&[&args[..], &["--code", &code]].concat(), &format!("{PASSWORD}\n")).await;
    assert!(out.ok, "{}", out.stderr);
    // A recovery code on the line after the password; it then makes new codes.
    assert!(elsewhere.login("bob", &format!("{PASSWORD}\n{}\n", codes[0])).await.ok);
    let out = elsewhere.run(&["second-factor", "recovery-codes"], &format!("{}\n", codes[1])).await;
    assert!(out.ok && out.stdout.lines().filter(|l| l.starts_with("  ")).count() == 10, "{} {}", out.stdout, out.stderr);
    assert!(!env.cli("bob-3").login("bob", &format!("{PASSWORD}\n{}\n", codes[2])).await.ok, "the earlier codes ended");

    // Only an admin with a second factor requires one of everybody.
    let refused = env.admin.fails(&["settings", "set", "--require-second-factor", "true"]).await;
    assert!(refused.contains("second_factor_off"), "{refused}");

    // A lost phone: the admin resets it; bob's tokens end; he signs in with his password alone.
    let out = env.admin.ok(&["technicians", "update", "bob", "--reset-second-factor"]).await;
    assert!(out.contains("updated technician bob (id 2): active"), "{out}");
    assert!(bob.fails(&["sessions", "list"]).await.contains("HTTP 401"));
    assert!(bob.login("bob", &format!("{PASSWORD}\n")).await.ok);

    // Set up again, then turned off with the password and a code.
    let (secret, out) = enable_second_factor(&bob).await;
    assert!(out.ok, "{}", out.stderr);
    let out = bob.run(&["second-factor", "disable"], &format!("{PASSWORD}\n{}\n", authenticator_code(&secret, 30))).await;
    assert!(out.ok && out.stdout.contains("second factor off for bob"), "{} {}", out.stdout, out.stderr);
    assert!(env.cli("bob-4").login("bob", &format!("{PASSWORD}\n")).await.ok);
}

/// The cells of a table's column, row by row (columns start where their header does).
fn column(table: &str, header: &str) -> Vec<String> {
    let mut lines = table.lines();
    let head: Vec<char> = lines.next().unwrap().chars().collect();
    let starts: Vec<usize> = (0..head.len()).filter(|&i| head[i] != ' ' && (i == 0 || (i >= 2 && head[i - 1] == ' ' && head[i - 2] == ' '))).collect();
    let at = starts.iter().position(|&i| head[i..].iter().collect::<String>().starts_with(header)).unwrap_or_else(|| panic!("no column {header}"));
    let (from, to) = (starts[at], starts.get(at + 1).copied());
    lines
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            let end = to.unwrap_or(chars.len()).min(chars.len());
            chars.get(from..end).map(|c| c.iter().collect::<String>().trim().to_owned()).unwrap_or_default()
        })
        .collect()
}

/// The value of a `session show` row.
fn row<'a>(shown: &'a str, label: &str) -> &'a str {
    let prefix = format!("{label}:");
    shown.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {label} row in:\n{shown}")).trim()
}

/// The cell under `header` in the row whose ID is `id`.
fn cell(table: &str, header: &str, id: &str) -> String {
    let at = column(table, "ID").iter().position(|i| i == id).unwrap_or_else(|| panic!("no row {id} in:\n{table}"));
    column(table, header).swap_remove(at)
}

/// A password an administrator gives in a reset (one-time, like the first).
const RESET_PASSWORD: &str = "copper harbor ninety kites";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_runs_the_desk_from_the_command_line() {
    let env = relay().await;
    let admin = &env.admin;
    let login = admin.login("admin", &format!("{}\n", env.admin_password)).await;
    assert!(login.ok, "{}", login.stderr);
    assert!(login.stdout.contains("logged in as admin"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&admin.config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }

    for name in ["bob", "carol", "dan"] {
        let out = admin.run(&["technicians", "create", "--username", name], &format!("{ONE_TIME_PASSWORD}\n")).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("they set their own password at the first sign-in"), "{}", out.stdout);
        admin.ok(&["channels", "add-member", "Default", name]).await;
    }
    let technicians = admin.ok(&["technicians", "list"]).await;
    assert_eq!(column(&technicians, "USERNAME"), ["admin", "bob", "carol", "dan"]);
    assert_eq!(column(&technicians, "STATUS"), ["active", "must change password", "must change password", "must change password"]);
    let channels = admin.ok(&["channels", "list"]).await;
    assert!(cell(&channels, "MEMBERS", "1").ends_with("bob (2), carol (3), dan (4)"), "{channels}");
    let tier2: ChannelView = admin.json(&["channels", "create", "--name", "Tier 2", "--session-expiry", "7200"]).await;
    assert_eq!(tier2.session_expiry_secs, 7200);

    let link: SessionView = admin.json(&["session", "new", "--channel", "Default", "--link", "--name", "VPN"]).await;
    let url = link.link.as_deref().unwrap();
    assert!(url.starts_with(&format!("{}/s/", admin.server)), "{url}");
    assert!(url.ends_with(&format!("&sha256={}", admin.fingerprint)), "the link carries the certificate to pin: {url}");
    let out = admin.ok(&["session", "new", "--channel", "Default", "--pin"]).await;
    assert!(out.starts_with("created session 2: PIN "), "{out}");

    let home = admin.ok(&["sessions", "list", "--home"]).await;
    assert_eq!(home.lines().count(), 3, "a header and two sessions:\n{home}");
    // Piped into a reader that stopped reading (`| head -1`): it ends quietly, no panic.
    for args in [&["sessions", "list"][..], &["--json", "sessions", "list"]] {
        let (status, stderr) = admin.run_into_closed_pipe(args).await;
        assert!(status.success() && stderr.is_empty(), "{args:?}: {status}, {stderr}");
    }
    assert_eq!(column(&home, "CHANNEL"), ["Default (1)", "Default (1)"], "{home}");

    admin.ok(&["session", "invite", "1", "bob"]).await;
    admin.ok(&["session", "invite", "1", "carol"]).await;
    let fourth = admin.run(&["session", "invite", "1", "dan"], "").await;
    assert!(!fourth.ok, "a fourth technician is refused");
    assert!(fourth.stderr.contains("at most 3 technicians"), "{}", fourth.stderr);
    assert!(fourth.stderr.contains("too_many_technicians"));
    let home = admin.ok(&["sessions", "list"]).await;
    assert_eq!(cell(&home, "ASSIGNED", "1"), "admin (1)", "{home}");
    assert_eq!(cell(&home, "INVITED", "1"), "bob (2), carol (3)", "{home}");
    assert_eq!((cell(&home, "INVITED", "2"), cell(&home, "NAME", "1")), ("-".into(), "VPN".into()), "{home}");

    let out = admin.ok(&["session", "uninvite", "1", "carol"]).await;
    assert!(out.contains("carol is no longer on session 1"), "{out}");
    let shown = admin.ok(&["session", "show", "1"]).await;
    assert_eq!(row(&shown, "name"), "VPN");
    assert_eq!(row(&shown, "channel"), "Default (1)");
    assert_eq!(row(&shown, "code"), format!("link {url}"));
    assert_eq!(row(&shown, "assigned"), "admin (1)");
    assert_eq!(row(&shown, "invited"), "bob (2)");
    assert_eq!(row(&shown, "consent"), "none");
    assert_eq!(row(&shown, "computer"), "no support app has connected yet");

    let moved: SessionView = admin.json(&["session", "transfer", "1", "--channel", "Tier 2"]).await;
    assert_eq!(moved.channel_id, tier2.id);
    assert!(moved.assigned_technician_id.is_none());
    let release = admin.run(&["session", "release", "1"], "").await;
    assert!(!release.ok);
    assert!(release.stderr.contains("nobody is assigned"), "{}", release.stderr);
    assert!(admin.ok(&["session", "close", "1"]).await.contains("session 1 closed"));
    admin.ok(&["session", "delete", "1"]).await;
    let gone = admin.run(&["session", "show", "1"], "").await;
    assert!(!gone.ok && gone.stderr.contains("not found"));
    // Deleted sessions leave the lists but can still be found, with their history.
    assert_eq!(column(&admin.ok(&["sessions", "list"]).await, "ID"), ["2"]);
    let deleted = admin.ok(&["sessions", "list", "--deleted"]).await;
    assert_eq!(column(&deleted, "ID"), ["1"], "{deleted}");
    assert_eq!(column(&deleted, "CHANNEL"), [format!("Tier 2 ({})", tier2.id)], "{deleted}");
    let deleted: Vec<SessionView> = admin.json(&["sessions", "list", "--deleted"]).await;
    assert!(deleted[0].deleted && deleted[0].state == "closed", "{deleted:?}");

    let events = admin.ok(&["session", "events", "1"]).await;
    let actions = column(&events, "ACTION");
    assert_eq!(actions, ["created", "invited", "invited", "uninvited", "transferred_to_channel", "closed", "deleted"], "{events}");
    assert!(column(&events, "ACTOR").iter().all(|a| a == "admin (1)"), "actors by name:\n{events}");
    let details = column(&events, "DETAIL");
    assert_eq!(details[0], "link session in Default (1)");
    assert_eq!(details[2], "carol (3)");
    assert_eq!(details[4], format!("from Default (1) to Tier 2 ({})", tier2.id));
    let remote = admin.run(&["session", "remote", "2"], "").await;
    assert!(!remote.ok && remote.stderr.contains("needs an active session"), "{}", remote.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_password_is_replaced_at_the_first_login() {
    let env = relay().await;
    assert!(env.admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let created = env.admin.run(&["technicians", "create", "--username", "bob"], &format!("{ONE_TIME_PASSWORD}\n")).await;
    assert!(created.ok, "{}", created.stderr);
    let bob = env.cli("bob");

    // No new password on the second line: refused, saying what is missing; nothing saved.
    let out = bob.login("bob", &format!("{ONE_TIME_PASSWORD}\n")).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("one-time password") && out.stderr.contains("must set a new password"), "{}", out.stderr);
    assert!(out.stderr.contains("second line of standard input") && out.stderr.contains("no token was saved"), "{}", out.stderr);
    assert!(!bob.config.exists(), "no token saved");
    // A weak new password is refused by the relay: nothing saved either.
    let out = bob.login("bob", &format!("{ONE_TIME_PASSWORD}\npassword1234\n")).await;
    assert!(!out.ok && out.stderr.contains("weak_password"), "{}", out.stderr);
    assert!(!bob.config.exists(), "no token saved");

    // With the new password on the second line: it is bob's own from now on.
    let out = bob.login("bob", &format!("{ONE_TIME_PASSWORD}\n{PASSWORD}\n")).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("password changed; logged in as bob"), "{}", out.stdout);
    let home: Vec<SessionView> = bob.json(&["sessions", "list"]).await;
    assert!(home.is_empty(), "the saved token works beyond setting a password");
    assert_eq!(cell(&env.admin.ok(&["technicians", "list"]).await, "STATUS", "2"), "active");

    // The one-time password is spent; the new one signs in without more questions.
    let elsewhere = env.cli("bob-elsewhere");
    let out = elsewhere.login("bob", &format!("{ONE_TIME_PASSWORD}\n{OTHER_PASSWORD}\n")).await;
    assert!(!out.ok && out.stderr.contains("wrong username or password"), "{}", out.stderr);
    let out = elsewhere.login("bob", &format!("{PASSWORD}\n")).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("logged in as bob") && !out.stdout.contains("password changed"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_enables_and_resets_a_technician() {
    let env = relay().await;
    assert!(env.admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let bob = env.technician("bob").await;
    bob.ok(&["sessions", "list"]).await;

    let out = env.admin.ok(&["technicians", "update", "bob", "--disable"]).await;
    assert!(out.contains("updated technician bob (id 2): disabled"), "{out}");
    assert_eq!(cell(&env.admin.ok(&["technicians", "list"]).await, "STATUS", "2"), "disabled");
    let refused = bob.fails(&["sessions", "list"]).await;
    assert!(refused.contains("HTTP 401") && refused.contains("deskline login"), "bob's saved token ended: {refused}");
    let out = bob.login("bob", &format!("{PASSWORD}\n")).await;
    assert!(!out.ok && out.stderr.contains("disabled"), "{}", out.stderr);

    let out = env.admin.ok(&["technicians", "update", "2", "--enable"]).await;
    assert!(out.contains("updated technician bob (id 2): active"), "{out}");
    let out = bob.login("bob", &format!("{PASSWORD}\n")).await;
    assert!(out.ok, "enabled again: {}", out.stderr);
    bob.ok(&["sessions", "list"]).await;

    // A reset gives a new one-time password: bob's sign-in ends and he sets his own again.
    let args = ["technicians", "update", "bob", "--reset-password", "--display-name", "Bob B.", "--role", "admin"];
    let reset = env.admin.run(&args, &format!("{RESET_PASSWORD}\n")).await;
    assert!(reset.ok, "{}", reset.stderr);
    assert!(reset.stdout.contains("must change password"), "{}", reset.stdout);
    assert!(bob.fails(&["sessions", "list"]).await.contains("HTTP 401"));
    let out = bob.login("bob", &format!("{RESET_PASSWORD}\n{OTHER_PASSWORD}\n")).await;
    assert!(out.ok && out.stdout.contains("password changed"), "{}", out.stderr);
    let technicians: Vec<TechnicianView> = env.admin.json(&["technicians", "list"]).await;
    let b = technicians.iter().find(|t| t.username == "bob").unwrap();
    assert_eq!((b.display_name.as_str(), b.role), ("Bob B.", deskline_api::Role::Admin));
    assert!(!b.must_change_password && !b.disabled);

    assert!(env.admin.fails(&["technicians", "update", "bob"]).await.contains("nothing to change"));
    assert!(env.admin.fails(&["technicians", "update", "bob", "--role", "root"]).await.contains("not a role"));
    assert!(env.admin.fails(&["technicians", "update", "bob", "--disable", "--enable"]).await.contains("cannot be used with"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_changes_their_password_and_signs_out() {
    let env = relay().await;
    assert!(env.admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let bob = env.technician("bob").await;
    let earlier = env.dir.path().join("bob-earlier.json");
    std::fs::copy(&bob.config, &earlier).unwrap();

    let out = bob.run(&["password"], &format!("{PASSWORD}\n{OTHER_PASSWORD}\n")).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("password changed for bob"), "{}", out.stdout);
    bob.ok(&["sessions", "list"]).await;
    let old = bob.run_with(&earlier, &["sessions", "list"], "").await;
    assert!(!old.ok && old.stderr.contains("HTTP 401"), "the other sign-ins ended: {}", old.stderr);
    let out = bob.run(&["password"], &format!("not my password\n{PASSWORD}\n")).await;
    assert!(!out.ok && out.stderr.contains("wrong_password"), "{}", out.stderr);
    let out = bob.run(&["password"], &format!("{OTHER_PASSWORD}\n")).await;
    assert!(!out.ok && out.stderr.contains("no new password"), "{}", out.stderr);
    assert!(env.cli("bob-2").login("bob", &format!("{OTHER_PASSWORD}\n")).await.ok, "the new password signs in");

    // Signing out ends the token and forgets it.
    std::fs::copy(&bob.config, &earlier).unwrap();
    assert!(bob.ok(&["logout"]).await.contains("logged out"));
    assert!(!bob.config.exists(), "the saved login is deleted");
    let old = bob.run_with(&earlier, &["sessions", "list"], "").await;
    assert!(!old.ok && old.stderr.contains("HTTP 401"), "the token was revoked: {}", old.stderr);
    assert!(bob.fails(&["sessions", "list"]).await.contains("deskline login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_members_and_the_organisation_are_managed_from_the_command_line() {
    let env = relay().await;
    assert!(env.admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let bob = env.technician("bob").await;
    assert!(cell(&env.admin.ok(&["channels", "list"]).await, "MEMBERS", "1").contains("bob (2)"));
    let seen: Vec<ChannelView> = bob.json(&["channels", "list"]).await;
    assert_eq!(seen.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Default"]);

    let out = env.admin.ok(&["channels", "remove-member", "Default", "bob"]).await;
    assert!(out.contains("removed bob from Default"), "{out}");
    let channels = env.admin.ok(&["channels", "list"]).await;
    assert!(!cell(&channels, "MEMBERS", "1").contains("bob"), "{channels}");
    let seen: Vec<ChannelView> = bob.json(&["channels", "list"]).await;
    assert!(seen.is_empty(), "bob no longer works in Default: {seen:?}");

    assert_eq!(env.admin.ok(&["settings", "show"]).await.trim(), "organisation: Example IT\nsecond factor: each technician's choice");
    let out = env.admin.ok(&["settings", "set", "--organisation", "Acme Support"]).await;
    assert!(out.contains("organisation: Acme Support"), "{out}");
    let settings: Settings = bob.json(&["settings", "show"]).await;
    assert_eq!(settings.organisation, "Acme Support");
    let refused = bob.fails(&["settings", "set", "--organisation", "Bob's"]).await;
    assert!(refused.contains("HTTP 403"), "only admins change settings: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_or_password_fails_clearly_and_saves_nothing() {
    let env = relay().await;
    let admin = &env.admin;
    let wrong_fp = "00".repeat(32);
    let args = ["login", "--server", &admin.server, "--username", "admin", "--password-stdin", "--insecure-pin-cert", &wrong_fp];
    let out = admin.run(&args, &format!("{}\n", env.admin_password)).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("cannot reach the relay") && out.stderr.contains("certificate"), "{}", out.stderr);
    // Without a pin, the self-signed certificate is not trusted either.
    let args = ["login", "--server", &admin.server, "--username", "admin", "--password-stdin"];
    let out = admin.run(&args, &format!("{}\n", env.admin_password)).await;
    assert!(!out.ok && out.stderr.contains("UnknownIssuer"), "{}", out.stderr);
    let out = admin.login("admin", "not the password\n").await;
    assert!(!out.ok && out.stderr.contains("wrong username or password"), "{}", out.stderr);
    assert!(!admin.config.exists(), "no token saved after failed logins");
    let out = admin.run(&["sessions", "list"], "").await;
    assert!(!out.ok && out.stderr.contains("deskline login"), "{}", out.stderr);
    let bad = admin.run(&["login", "--server", "ftp://x", "--username", "a", "--password-stdin"], "pw\n").await;
    assert!(!bad.ok && bad.stderr.contains("https://"));
}
/// Starts the support app's connection logic with the synthetic source, answering consent
/// requests with `answer`; returns what it injected.
async fn synthetic_app(env: &Env, pin: &str, answer: deskline_agent::ScriptedAnswer) -> deskline_agent::RecordingSink {
    use deskline_agent::{AgentConfig, RecordingSink, ScriptedPrompt, SyntheticSource, register};
    let config = AgentConfig {
        relay: env.quic,
        server_name: "localhost".into(),
        fingerprint: Some(deskline_net::tls::parse_fingerprint(&env.admin.fingerprint).unwrap()),
        code: deskline_protocol::AppCode::Pin(pin.parse().unwrap()),
        relays: Vec::new(),
    };
    let display = deskline_protocol::DisplayInfo { id: 0, name: "synthetic".into(), width: 320, height: 240, primary: true };
    let info = deskline_protocol::AppInfo { os: "test".into(), host_name: "pc".into(), app_version: "0".into(), displays: vec![display] };
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
    let admin = &env.admin;
    assert!(admin.login("admin", &format!("{}\n", env.admin_password)).await.ok);
    let allowed: SessionView = admin.json(&["session", "new", "--channel", "Default", "--pin"]).await;
    let denied: SessionView = admin.json(&["session", "new", "--channel", "Default", "--pin"]).await;
    let sink = synthetic_app(&env, allowed.pin.as_deref().unwrap(), deskline_agent::ScriptedAnswer::AllowAll).await;
    let _denied_sink = synthetic_app(&env, denied.pin.as_deref().unwrap(), deskline_agent::ScriptedAnswer::Deny).await;

    for (session, granted) in [(&allowed, "granted"), (&denied, "none")] {
        let id = session.id.to_string();
        let out = admin.ok(&["session", "remote", &id]).await;
        assert!(out.contains("asked the end user"), "{out}");
        let mut status = String::new();
        for _ in 0..100 {
            status = admin.json::<SessionView>(&["session", "show", &id]).await.consent.status;
            if status == granted {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, granted);
    }
    // `session show` puts the consent and the end user's computer in words.
    let shown = admin.ok(&["session", "show", &allowed.id.to_string()]).await;
    assert_eq!(row(&shown, "state"), "active");
    assert_eq!(row(&shown, "consent"), "granted: view and control to admin");
    assert_eq!(row(&shown, "computer"), "pc — test");
    assert_eq!(row(&shown, "support app"), "0");
    assert_eq!(row(&shown, "displays"), "0: synthetic (320×240), primary");
    let shown = admin.ok(&["session", "show", &denied.id.to_string()]).await;
    assert_eq!(row(&shown, "consent"), "none", "{shown}");
    let events = admin.ok(&["session", "events", &denied.id.to_string()]).await;
    let (actors, details) = (column(&events, "ACTOR"), column(&events, "DETAIL"));
    assert_eq!(actors.last().map(String::as_str), Some("support app"), "{events}");
    assert_eq!(details.last().map(String::as_str), Some("denied to admin (1)"), "{events}");

    let png = env.dir.path().join("last.png");
    let id = allowed.id.to_string();
    let out = admin.run(&["view", &id, "--headless", "--frames", "10", "--save-last", png.to_str().unwrap()], "").await;
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
        admin.ok(&all).await;
    }
    let bad_key = admin.run(&["input", &id, "key", "enter"], "").await;
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
    let id = denied.id.to_string();
    let out = admin.run(&["view", &id, "--headless", "--frames", "5", "--timeout", "2"], "").await;
    assert!(!out.ok);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["frames"], 0);
    assert!(out.stderr.contains("not allowed viewing"), "{}", out.stderr);
    let input = admin.run(&["input", &id, "click"], "").await;
    assert!(!input.ok && input.stderr.contains("not granted control"), "{}", input.stderr);
}
