//! `deskline`: the technician's command line for the relay's HTTP API.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use deskline_console::client::Client;
use deskline_console::viewer::{self, RelayTarget, Viewer};
use deskline_console::window::{ViewerWindow, display_labels};
use deskline_protocol::{DisplayInfo, InputEvent, KeyCode, MouseButton, Press, SessionId, TechnicianId};
use std::path::PathBuf;
use std::time::Duration;
use deskline_console::config::{self, Saved};
use deskline_console::table::{cell, render};
use serde_json::{Value, json};
use std::io::{BufRead as _, IsTerminal as _};

#[derive(Parser)]
#[command(name = "deskline", version, about = "Deskline technician console: sessions, channels and technicians")]
struct Cli {
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in and save the token (mode 0600) for the other commands.
    Login {
        /// The relay, e.g. https://desk.example.org:8443
        #[arg(long)]
        server: String,
        #[arg(long)]
        username: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Trust the relay certificate with this SHA-256 fingerprint (printed by the relay at
        /// start) instead of the web PKI: for self-signed relays.
        #[arg(long, value_name = "SHA256")]
        insecure_pin_cert: Option<String>,
    },
    /// Technician accounts.
    Technicians {
        #[command(subcommand)]
        command: TechniciansCommand,
    },
    /// Channels and their members.
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Lists of sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Create and act on one session.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Watch a session's screen (after the end user allowed viewing).
    View {
        /// The session.
        id: i64,
        /// No window: decode frames, print latency statistics as JSON.
        #[arg(long)]
        headless: bool,
        /// With --headless: how many frames to decode.
        #[arg(long, default_value_t = 30)]
        frames: usize,
        /// With --headless: save the last decoded frame as a PNG.
        #[arg(long, value_name = "FILE.png")]
        save_last: Option<PathBuf>,
        /// Give up after this many seconds without a frame.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Show this display of the end user's machine (0 is their primary; `session show`
        /// lists them).
        #[arg(long)]
        display: Option<u32>,
    },
    /// Send mouse or keyboard input as the controlling technician (for scripted support).
    Input {
        /// The session.
        id: i64,
        #[command(subcommand)]
        action: InputAction,
    },
}

#[derive(Subcommand)]
enum InputAction {
    /// Move the pointer to X, Y (pixels of the shared display).
    Move { x: u32, y: u32 },
    /// Click a mouse button.
    Click {
        /// left, right or middle.
        #[arg(default_value = "left")]
        button: String,
    },
    /// Press and release a key, by its KeyboardEvent.code name (KeyA, Enter, ArrowLeft, F5, ...).
    Key { name: String },
    /// Type text as it is.
    Type { text: String },
}

#[derive(Subcommand)]
enum TechniciansCommand {
    /// Every technician.
    List,
    /// Create a technician (admins); the password is read from standard input or prompted.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// `technician` or `admin`.
        #[arg(long, default_value = "technician")]
        role: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Your Home (sessions assigned to or shared with you), or a channel's sessions.
    List {
        /// Your Home (the default).
        #[arg(long, conflicts_with = "channel")]
        home: bool,
        /// A channel's sessions (id or name).
        #[arg(long)]
        channel: Option<String>,
    },
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// The channels you can see.
    List,
    /// Create a channel (admins).
    Create {
        #[arg(long)]
        name: String,
        /// Session lifetime in seconds (default one day).
        #[arg(long)]
        session_expiry: Option<i64>,
        /// Seconds the end user has to answer a consent prompt (default 30).
        #[arg(long)]
        consent_timeout: Option<i64>,
    },
    /// Change a channel's settings (admins).
    Update {
        /// Id or name.
        channel: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        session_expiry: Option<i64>,
        #[arg(long)]
        consent_timeout: Option<i64>,
    },
    /// Add a technician to a channel (admins).
    AddMember {
        /// Channel id or name.
        channel: String,
        /// Technician id or username.
        technician: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct KindArg {
    /// An invite link the end user opens.
    #[arg(long)]
    link: bool,
    /// A 6-digit PIN the end user types into the support app.
    #[arg(long)]
    pin: bool,
}

#[derive(Subcommand)]
enum SessionCommand {
    /// Create a session (you are assigned); prints its link or PIN.
    New {
        /// Channel id or name.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        kind: KindArg,
        /// A name or note.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a session.
    Show { id: i64 },
    /// Assign to a technician of its channel.
    Assign { id: i64, technician: String },
    /// Hand over to a technician, or move to a channel's queue.
    Transfer {
        id: i64,
        #[arg(long, conflicts_with = "channel", required_unless_present = "channel")]
        technician: Option<String>,
        #[arg(long)]
        channel: Option<String>,
    },
    /// Invite a collaborating technician (three per session at most).
    Invite { id: i64, technician: String },
    /// Unassign yourself.
    Release { id: i64 },
    /// Close: ends any connection and invalidates the code.
    Close { id: i64 },
    /// Delete from the lists (the audit trail is kept).
    Delete { id: i64 },
    /// Start remote access: asks the end user for consent.
    Remote {
        id: i64,
        /// Ask to view only, not to control.
        #[arg(long)]
        view_only: bool,
    },
    /// The audit trail.
    Events { id: i64 },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let result = match cli.command {
        // The window owns the main thread; the connection runs on the runtime's workers.
        Command::View { id, headless: false, display, .. } => runtime.block_on(open_window(id, display)).and_then(run_window),
        _ => runtime.block_on(run(cli)),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Joins the session and starts the viewer; the window itself runs in [`run_window`].
async fn open_window(id: i64, display: Option<u32>) -> anyhow::Result<ViewerWindow> {
    let saved = config::load()?;
    let client = Client::new(&saved.server, saved.pin_cert.as_deref(), Some(saved.token))?;
    let viewer = join_showing(&client, id, display).await?;
    let me = viewer.me;
    let title = format!("{} — session {id}", viewer.welcome.organisation);
    let (commands, updates) = viewer.spawn();
    Ok(ViewerWindow::new(commands, updates, me, title).showing_display(display.unwrap_or(0)))
}

/// Joins the session showing `display`, checked first against the displays the end user's
/// machine reported.
async fn join_showing(client: &Client, id: i64, display: Option<u32>) -> anyhow::Result<Viewer> {
    if let Some(wanted) = display {
        let session = client.get(&format!("/sessions/{id}")).await?;
        let displays: Vec<DisplayInfo> = serde_json::from_value(session["agent"]["displays"].clone()).unwrap_or_default();
        if !displays.is_empty() && !displays.iter().any(|d| d.id == wanted) {
            let known: Vec<String> = display_labels(&displays).into_iter().map(|(d, label)| format!("{d}: {label}")).collect();
            anyhow::bail!("the end user's machine has no display {wanted}; it has {}", known.join(", "));
        }
    }
    let mut viewer = join_session(client, id).await?;
    if let Some(display) = display {
        viewer.select_display(display).await?;
    }
    Ok(viewer)
}

fn run_window(window: ViewerWindow) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]).with_title("Deskline viewer"),
        ..Default::default()
    };
    eframe::run_native("Deskline viewer", options, Box::new(|_| Ok(Box::new(window))))
        .map_err(|e| anyhow::anyhow!("cannot open the viewer window: {e}"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Login { server, username, password_stdin, insecure_pin_cert } => {
            let password = read_password(password_stdin, &format!("password for {username}: "))?;
            let client = Client::new(&server, insecure_pin_cert.as_deref(), None)?;
            let v = client.post("/login", &json!({"username": username, "password": password})).await?;
            let token = v["token"].as_str().context("the relay returned no token")?.to_owned();
            let path = config::save(&Saved { server, token, pin_cert: insecure_pin_cert })?;
            out.object(&v["technician"], &format!("logged in as {} (token saved to {})", username, path.display()));
        }
        command => {
            let saved = config::load()?;
            let client = Client::new(&saved.server, saved.pin_cert.as_deref(), Some(saved.token))?;
            run_signed_in(&client, &out, command).await?;
        }
    }
    Ok(())
}

async fn run_signed_in(client: &Client, out: &Output, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Login { .. } => unreachable!("handled before"),
        Command::Technicians { command: TechniciansCommand::List } => {
            out.technicians(&client.get("/technicians").await?);
        }
        Command::Technicians { command: TechniciansCommand::Create { username, display_name, role } } => {
            let password = read_password(!std::io::stdin().is_terminal(), &format!("password for {username}: "))?;
            let body = json!({"username": username, "display_name": display_name, "password": password, "role": role});
            let v = client.post("/technicians", &body).await?;
            out.object(&v, &format!("created technician {} (id {})", v["username"].as_str().unwrap_or(""), v["id"]));
        }
        Command::Channels { command } => channels(client, out, command).await?,
        Command::Sessions { command: SessionsCommand::List { home: _, channel } } => {
            let list = match channel {
                Some(c) => {
                    let id = channel_id(client, &c).await?;
                    client.get(&format!("/channels/{id}/sessions")).await?
                }
                None => client.get("/sessions?scope=home").await?,
            };
            out.sessions(&list);
        }
        Command::Session { command } => session(client, out, command).await?,
        Command::View { id, headless, frames, save_last, timeout, display } => {
            if !headless {
                unreachable!("the window is opened from main");
            }
            let viewer = join_showing(client, id, display).await?;
            view_headless(viewer, id, frames, save_last, display, Duration::from_secs(timeout)).await?;
        }
        Command::Input { id, action } => {
            let events = input_events(action)?;
            let viewer = join_session(client, id).await?;
            viewer.send_input(&events).await?;
            out.object(&json!({"session": id, "events": events.len()}), &format!("sent {} input event(s) to session {id}", events.len()));
        }
    }
    Ok(())
}

/// Joins a session over QUIC: where the relay's QUIC endpoint is and which certificate to
/// pin come from the (already trusted) HTTPS API.
async fn join_session(client: &Client, id: i64) -> anyhow::Result<Viewer> {
    let relay = client.get("/relay").await?;
    let me = client.get("/me").await?;
    let quic = relay["quic"].as_str().context("the relay did not say where its QUIC endpoint is")?;
    let addr = tokio::net::lookup_host(quic).await?.next().with_context(|| format!("cannot resolve {quic}"))?;
    let server_name = quic.rsplit_once(':').map_or(quic, |(h, _)| h).trim_matches(['[', ']']).to_owned();
    let fingerprint = deskline_net::tls::parse_fingerprint(relay["fingerprint"].as_str().unwrap_or_default())?;
    let target = RelayTarget { quic: addr, server_name, fingerprint };
    let me = TechnicianId(me["id"].as_i64().context("no technician id")?);
    Ok(viewer::join(&target, client.token().unwrap_or_default(), SessionId(id), me).await?)
}

/// Decodes `frames` frames (of `display` only, when given: frames of the display shown before
/// the switch may still arrive first) and prints a JSON report.
async fn view_headless(
    viewer: Viewer,
    id: i64,
    frames: usize,
    save_last: Option<PathBuf>,
    display: Option<u32>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    let mut last = None;
    let mut bytes = 0usize;
    let wanted = frames.max(1);
    let result = viewer
        .watch(timeout, |frame| {
            if display.is_some_and(|d| d != frame.display) {
                return true;
            }
            latencies.push(frame.latency_us);
            bytes += frame.bytes;
            last = Some(frame);
            latencies.len() < wanted
        })
        .await;
    let mut saved = None;
    if let (Some(path), Some(frame)) = (&save_last, &last) {
        viewer::save_png(path, frame.width, frame.height, &frame.rgb)?;
        saved = Some(path.display().to_string());
    }
    let report = json!({
        "session": id,
        "frames": latencies.len(),
        "width": last.as_ref().map(|f| f.width),
        "height": last.as_ref().map(|f| f.height),
        "display": last.as_ref().map(|f| f.display),
        "bytes": bytes,
        "latency_capture_to_decoded": viewer::latency_summary(latencies.clone()),
        "saved": saved,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    match result {
        Ok(()) => Ok(()),
        Err(e) => bail!("{e} ({} of {wanted} frames decoded)", latencies.len()),
    }
}

fn input_events(action: InputAction) -> anyhow::Result<Vec<InputEvent>> {
    Ok(match action {
        InputAction::Move { x, y } => vec![InputEvent::PointerMove { x, y }],
        InputAction::Click { button } => {
            let button = match button.as_str() {
                "left" => MouseButton::Left,
                "right" => MouseButton::Right,
                "middle" => MouseButton::Middle,
                other => bail!("unknown button {other:?}: use left, right or middle"),
            };
            vec![InputEvent::Button { button, press: Press::Down }, InputEvent::Button { button, press: Press::Up }]
        }
        InputAction::Key { name } => {
            let code: KeyCode = name.parse()?;
            vec![InputEvent::Key { code, press: Press::Down, text: None }, InputEvent::Key { code, press: Press::Up, text: None }]
        }
        InputAction::Type { text } => vec![InputEvent::Text { text }],
    })
}

async fn channels(client: &Client, out: &Output, command: ChannelsCommand) -> anyhow::Result<()> {
    match command {
        ChannelsCommand::List => out.channels(&client.get("/channels").await?),
        ChannelsCommand::Create { name, session_expiry, consent_timeout } => {
            let body = json!({"name": name, "session_expiry_secs": session_expiry, "consent_timeout_secs": consent_timeout});
            let v = client.post("/channels", &body).await?;
            out.object(&v, &format!("created channel {} (id {})", v["name"].as_str().unwrap_or(""), v["id"]));
        }
        ChannelsCommand::Update { channel, name, session_expiry, consent_timeout } => {
            let id = channel_id(client, &channel).await?;
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(s) = session_expiry {
                body.insert("session_expiry_secs".into(), json!(s));
            }
            if let Some(s) = consent_timeout {
                body.insert("consent_timeout_secs".into(), json!(s));
            }
            if body.is_empty() {
                bail!("nothing to change: give --name, --session-expiry or --consent-timeout");
            }
            let v = client.call("PATCH", &format!("/channels/{id}"), Some(&Value::Object(body))).await?;
            out.object(&v, &format!("updated channel {}", v["name"].as_str().unwrap_or("")));
        }
        ChannelsCommand::AddMember { channel, technician } => {
            let id = channel_id(client, &channel).await?;
            let tech = technician_id(client, &technician).await?;
            let v = client.post(&format!("/channels/{id}/members"), &json!({"technician_id": tech})).await?;
            out.object(&v, &format!("added {technician} to {}", v["name"].as_str().unwrap_or("")));
        }
    }
    Ok(())
}

async fn session(client: &Client, out: &Output, command: SessionCommand) -> anyhow::Result<()> {
    let (v, what) = match command {
        SessionCommand::New { channel, kind, name } => {
            let id = channel_id(client, &channel).await?;
            let kind = if kind.pin { "pin" } else { "link" };
            let v = client.post(&format!("/channels/{id}/sessions"), &json!({"kind": kind, "name": name})).await?;
            let code = match (v["pin"].as_str(), v["link"].as_str()) {
                (Some(pin), _) => format!("PIN {pin}"),
                (None, Some(link)) => format!("link {link}"),
                _ => String::new(),
            };
            let what = format!("created session {}: {code}", v["id"]);
            (v, what)
        }
        SessionCommand::Show { id } => (client.get(&format!("/sessions/{id}")).await?, String::new()),
        SessionCommand::Assign { id, technician } => {
            let tech = technician_id(client, &technician).await?;
            let v = client.post(&format!("/sessions/{id}/assign"), &json!({"technician_id": tech})).await?;
            (v, format!("session {id} assigned to {technician}"))
        }
        SessionCommand::Transfer { id, technician, channel } => {
            let body = match (technician, channel) {
                (Some(t), _) => json!({"technician_id": technician_id(client, &t).await?}),
                (None, Some(c)) => json!({"channel_id": channel_id(client, &c).await?}),
                (None, None) => bail!("give --technician or --channel"),
            };
            (client.post(&format!("/sessions/{id}/transfer"), &body).await?, format!("session {id} transferred"))
        }
        SessionCommand::Invite { id, technician } => {
            let tech = technician_id(client, &technician).await?;
            let v = client.post(&format!("/sessions/{id}/invite"), &json!({"technician_id": tech})).await?;
            (v, format!("{technician} invited to session {id}"))
        }
        SessionCommand::Release { id } => (client.post(&format!("/sessions/{id}/release"), &json!({})).await?, format!("session {id} released")),
        SessionCommand::Close { id } => (client.post(&format!("/sessions/{id}/close"), &json!({})).await?, format!("session {id} closed")),
        SessionCommand::Delete { id } => (client.call("DELETE", &format!("/sessions/{id}"), None).await?, format!("session {id} deleted")),
        SessionCommand::Remote { id, view_only } => {
            let capabilities = if view_only { "view" } else { "view_and_control" };
            let v = client.post(&format!("/sessions/{id}/remote"), &json!({"capabilities": capabilities})).await?;
            (v, format!("asked the end user of session {id} for consent"))
        }
        SessionCommand::Events { id } => {
            out.events(&client.get(&format!("/sessions/{id}/events")).await?);
            return Ok(());
        }
    };
    if what.is_empty() {
        out.session_detail(&v);
    } else {
        out.object(&v, &what);
    }
    Ok(())
}

/// A technician given by id or username.
async fn technician_id(client: &Client, reference: &str) -> anyhow::Result<i64> {
    if let Ok(id) = reference.parse() {
        return Ok(id);
    }
    let all = client.get("/technicians").await?;
    find_by(&all, "username", reference).with_context(|| format!("no technician with the username {reference:?}"))
}

/// A channel given by id or name.
async fn channel_id(client: &Client, reference: &str) -> anyhow::Result<i64> {
    if let Ok(id) = reference.parse() {
        return Ok(id);
    }
    let all = client.get("/channels").await?;
    find_by(&all, "name", reference).with_context(|| format!("no channel named {reference:?} that you can see"))
}

fn find_by(list: &Value, field: &str, wanted: &str) -> Option<i64> {
    list.as_array()?.iter().find(|item| item[field].as_str() == Some(wanted)).and_then(|item| item["id"].as_i64())
}

fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        Ok(password)
    } else {
        Ok(rpassword::prompt_password(prompt)?)
    }
}

/// Prints for people or, with `--json`, the API's JSON.
struct Output {
    json: bool,
}

impl Output {
    fn raw(&self, v: &Value) -> bool {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
        self.json
    }

    fn object(&self, v: &Value, message: &str) {
        if !self.raw(v) {
            println!("{message}");
        }
    }

    fn technicians(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows = rows(v, &["id", "username", "display_name", "role"]);
        println!("{}", render(&["ID", "USERNAME", "NAME", "ROLE"], &rows));
    }

    fn channels(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows = rows(v, &["id", "name", "session_expiry_secs", "consent_timeout_secs", "member_ids"]);
        println!("{}", render(&["ID", "NAME", "EXPIRY(S)", "CONSENT(S)", "MEMBERS"], &rows));
    }

    fn sessions(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows = rows_by(v, |s| {
            let code = s["pin"].as_str().or(s["link"].as_str()).unwrap_or("-").to_owned();
            vec![
                cell(&s["id"]),
                cell(&s["channel_id"]),
                cell(&s["state"]),
                cell(&s["kind"]),
                code,
                cell(&s["assigned_technician_id"]),
                cell(&s["invited_technician_ids"]),
                cell(&s["name"]),
            ]
        });
        println!("{}", render(&["ID", "CHANNEL", "STATE", "KIND", "CODE", "ASSIGNED", "INVITED", "NAME"], &rows));
    }

    fn session_detail(&self, s: &Value) {
        if self.raw(s) {
            return;
        }
        let fields = [
            "id", "channel_id", "name", "kind", "state", "pin", "link", "assigned_technician_id",
            "invited_technician_ids", "created_at", "expires_at",
        ];
        for f in fields {
            println!("{:<24}{}", format!("{f}:"), cell(&s[f]));
        }
        println!("{:<24}{}", "consent:", s["consent"]);
        println!("{:<24}{}", "agent:", cell(&s["agent"]));
    }

    fn events(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows = rows_by(v, |e| {
            let mut detail = e["action"].clone();
            let action = detail["action"].as_str().unwrap_or("?").to_owned();
            if let Some(map) = detail.as_object_mut() {
                map.remove("action");
            }
            let actor = match (e["actor"]["kind"].as_str(), e["actor"]["id"].as_i64()) {
                (Some(kind), Some(id)) => format!("{kind} {id}"),
                (Some(kind), None) => kind.to_owned(),
                _ => "?".into(),
            };
            let detail = if detail.as_object().is_some_and(|m| !m.is_empty()) { detail.to_string() } else { String::new() };
            vec![cell(&e["at"]), actor, action, format!("{} -> {}", cell(&e["from"]), cell(&e["to"])), detail]
        });
        println!("{}", render(&["AT", "ACTOR", "ACTION", "STATE", "DETAIL"], &rows));
    }
}

fn rows(v: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    rows_by(v, |item| fields.iter().map(|f| cell(&item[*f])).collect())
}

/// One table row per element of a JSON array.
fn rows_by(v: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v.as_array().map(|list| list.iter().map(row).collect()).unwrap_or_default()
}
