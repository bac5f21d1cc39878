//! `deskline`: the technician's command line for the relay's HTTP API.
//!
//! It reads and sends the API's typed values (`deskline-api`, the definitions the relay
//! serves); tables and a session's details are put in words by `deskline_console::describe`.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use deskline_api::{
    ChangePassword, ChannelView, ChatMessageView, NewChatMessage, CreateChannel, CreateSession, CreateTechnician, DisableSecondFactor, LoginRequest,
    LoginResponse, RecoveryCodes, RelayInfo, RemoteRequest, Role, SecondFactorCode, SecondFactorConfirmed, SecondFactorEnrolment,
    SessionView, Settings, SettingsPatch, StartSecondFactor, TechnicianRef, TechnicianView, TransferRequest, UpdateChannel,
    UpdateTechnician,
};
use deskline_console::client::{ApiError, Client};
use deskline_console::config::{self, Saved};
use deskline_console::describe::{self, Names};
use deskline_console::secrets::Secrets;
use deskline_console::viewer::{self, RelayTarget, Viewer};
use deskline_console::window::{ViewerWindow, display_labels};
use deskline_net::relay_file::RelayFile;
use deskline_protocol::session::SessionKind;
use deskline_protocol::{Capabilities, InputEvent, KeyCode, MouseButton, Press, SessionId, TechnicianId};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::OnceCell;

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
    /// Sign in and save the token (mode 0600) for the other commands. After a one-time
    /// password (a new account, a reset), sets your own password first.
    Login {
        /// The relay, e.g. https://desk.example.org:8443
        #[arg(long)]
        server: String,
        #[arg(long)]
        username: String,
        /// Read the password from standard input instead of prompting (after a one-time
        /// password, the new password on the second line).
        #[arg(long)]
        password_stdin: bool,
        /// Trust the relay certificate with this SHA-256 fingerprint (printed by the relay at
        /// start) instead of the web PKI: for self-signed relays.
        #[arg(long, value_name = "SHA256")]
        insecure_pin_cert: Option<String>,
        /// For an account with a second factor: the code the authenticator app shows, or a
        /// recovery code (asked for when needed otherwise: prompted, or the next line of
        /// standard input).
        #[arg(long)]
        code: Option<String>,
    },
    /// Your second factor: a code from an authenticator app at every sign-in.
    SecondFactor {
        #[command(subcommand)]
        command: SecondFactorCommand,
    },
    /// Change your own password; your other sign-ins end, the new token is saved.
    Password {
        /// Read the current password (first line) and the new one (second line) from standard
        /// input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sign out: the token is revoked and the saved login deleted.
    Logout,
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
    /// Relay-wide settings (the organisation named to end users).
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Print the support app's settings for this relay (support.toml): a support app installed
    /// on a machine (the deskline-support package, or a copy IT deploys) reads it from
    /// /etc/deskline/support.toml or %ProgramData%\Deskline\support.toml to find the relay.
    SupportConfig,
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
    /// Copied text to or from the end user's clipboard (once they allowed you the clipboard:
    /// `session remote ID --ask view,control,clipboard`).
    Clipboard {
        /// The session.
        id: i64,
        #[command(subcommand)]
        action: ClipboardAction,
    },
}

#[derive(Subcommand)]
enum ClipboardAction {
    /// Put TEXT (without it: standard input, as it is) on the end user's clipboard, as the
    /// controlling technician; at most 32 KiB.
    Send { text: Option<String> },
    /// Wait for the end user to copy text, and print it.
    Receive {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
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
    /// Every technician, with where their account stands.
    List,
    /// Create a technician (admins). Their password, read from standard input or prompted,
    /// is one-time: they set their own at the first sign-in.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// `technician` or `admin`.
        #[arg(long, default_value = "technician", value_parser = parse_role)]
        role: Role,
    },
    /// Change a technician's account (admins).
    Update {
        /// Technician id or username.
        technician: String,
        #[arg(long)]
        display_name: Option<String>,
        /// `technician` or `admin`.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Disable the account: its tokens end at once, it leaves every live session.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable a disabled account again.
        #[arg(long)]
        enable: bool,
        /// Give a new one-time password (read from standard input or prompted); the
        /// technician's tokens end and they set their own at the next sign-in.
        #[arg(long)]
        reset_password: bool,
        /// Remove their second factor and recovery codes (a lost phone); their tokens end.
        #[arg(long)]
        reset_second_factor: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Your Home (sessions assigned to or shared with you), a channel's sessions, or deleted
    /// sessions.
    List {
        /// Your Home (the default).
        #[arg(long, conflicts_with_all = ["channel", "deleted"])]
        home: bool,
        /// A channel's sessions (id or name).
        #[arg(long, conflicts_with = "deleted")]
        channel: Option<String>,
        /// Deleted sessions of your channels (all, for admins), to read their history.
        #[arg(long)]
        deleted: bool,
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
        /// The largest file its sessions may pass, in MB (default 2048; 0: no files).
        #[arg(long)]
        max_file_mb: Option<i64>,
        /// Record its remote sessions (the end user is told before they choose).
        #[arg(long)]
        record_sessions: bool,
        /// Days recordings are kept (default 30; 0: as long as their session).
        #[arg(long)]
        retention_days: Option<i64>,
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
        /// The largest file its sessions may pass, in MB (0: no files).
        #[arg(long)]
        max_file_mb: Option<i64>,
        /// Record its remote sessions (true) or stop (false).
        #[arg(long, value_name = "true|false")]
        record_sessions: Option<bool>,
        /// Days recordings are kept (0: as long as their session).
        #[arg(long)]
        retention_days: Option<i64>,
    },
    /// Add a technician to a channel (admins).
    AddMember {
        /// Channel id or name.
        channel: String,
        /// Technician id or username.
        technician: String,
    },
    /// Remove a technician from a channel (admins): they leave its live sessions.
    RemoveMember {
        /// Channel id or name.
        channel: String,
        /// Technician id or username.
        technician: String,
    },
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// The relay-wide settings.
    Show,
    /// Change them (admins).
    Set {
        /// The organisation named to end users (consent popup, session bar, invite page).
        #[arg(long)]
        organisation: Option<String>,
        /// Every technician must sign in with a second factor (`true`/`false`); one without it
        /// can only set it up.
        #[arg(long, value_name = "BOOL")]
        require_second_factor: Option<bool>,
    },
}

#[derive(Subcommand)]
enum SecondFactorCommand {
    /// Set it up: shows a QR code (and the secret) for an authenticator app, asks for the
    /// code it shows, then prints recovery codes to keep. Your other sign-ins end.
    Enable,
    /// Turn it off (asks for your password and a code); refused while an administrator
    /// requires one.
    Disable,
    /// New recovery codes (asks for a code); the earlier ones stop working.
    RecoveryCodes,
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
    /// Show a session: its technicians, consent and the end user's computer.
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
    /// Take an invited technician off the session (the owner or an admin), or leave it
    /// (yourself).
    Uninvite { id: i64, technician: String },
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
        #[arg(long, conflicts_with = "ask")]
        view_only: bool,
        /// What to ask for, comma-separated: view, control, files, clipboard (default
        /// view,control). The end user may allow less.
        #[arg(long, value_name = "LIST")]
        ask: Option<Capabilities>,
    },
    /// The audit trail.
    Events { id: i64 },
    /// The session's recordings (its channel records remote sessions).
    Recordings { id: i64 },
    /// Download recording REC (an id from `session recordings`) into FILE (an MP4 a browser or
    /// any player plays), and print its timed log: consent, control, input, chat, clipboard.
    /// Every download is in the session's audit trail.
    Recording { recording: i64, file: PathBuf },
    /// Write TEXT to the end user and the technicians on the session (while the support app is
    /// connected, before any consent too); without TEXT, print the session's chat.
    Chat {
        id: i64,
        /// The message (plain text).
        text: Option<String>,
    },
    /// Send FILE to the end user (once they allowed you files: `session remote ID --ask
    /// view,control,files`): they are asked to accept it and where to save it. Shows progress;
    /// the file arrives whole (size and SHA-256 checked) or not at all.
    Send {
        id: i64,
        file: PathBuf,
        /// Give up if the end user has not answered after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Wait for the end user to send a file (from the support app), and save it in DIR (never
    /// over a file there: a taken name gets a number). Prints where it was saved.
    Receive {
        id: i64,
        dir: PathBuf,
        /// Give up if no file was sent after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: use technician or admin"))
}

/// Prints a line on standard output (as `println!`). A reader that went away — `deskline
/// sessions list | head -1` — ends the command quietly with success, as it ends other Unix
/// tools, instead of `println!`'s panic.
macro_rules! say {
    ($($arg:tt)*) => { out_write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes `text` on standard output; see [`say!`].
fn out_write(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
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
    let signed_in = !matches!(cli.command, Command::Login { .. });
    let result = match cli.command {
        // The window owns the main thread; the connection runs on the runtime's workers.
        Command::View { id, headless: false, display, .. } => runtime.block_on(open_window(id, display)).and_then(run_window),
        _ => runtime.block_on(run(cli)),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        if let Some(hint) = hint(&e).filter(|_| signed_in) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// What to do about a signed-in command's failure, when the relay's answer says.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    let e = e.downcast_ref::<ApiError>()?;
    match (e.status(), e.code()) {
        (_, Some("password_change_required")) => Some("set your own password with `deskline password`"),
        (Some(401), _) => Some("your sign-in has ended (signed out, password changed or account disabled): run `deskline login`"),
        _ => None,
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
        let session: SessionView = client.get(&format!("/sessions/{id}")).await?;
        let displays = session.agent.map(|a| a.displays).unwrap_or_default();
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
        Command::Login { server, username, password_stdin, insecure_pin_cert, code } => {
            login(&out, server, username, password_stdin, insecure_pin_cert, code).await
        }
        command => {
            let saved = config::load()?;
            let client = Client::new(&saved.server, saved.pin_cert.as_deref(), Some(saved.token.clone()))?;
            let desk = Desk::new(&client);
            run_signed_in(&desk, &saved, &out, command).await
        }
    }
}

/// Signs in and saves the token. An account with a second factor is asked for its code (the
/// next line of standard input). A one-time password (the demo admin's, one an administrator
/// gave) only lets its holder set their own: the new password is asked for (or read from the
/// next line) and set before anything is saved.
async fn login(
    out: &Output,
    server: String,
    username: String,
    password_stdin: bool,
    pin_cert: Option<String>,
    code: Option<String>,
) -> anyhow::Result<()> {
    let mut secrets = Secrets::standard(password_stdin);
    let password = secrets.next(&format!("password for {username}: "))?.context("no password given")?;
    let client = Client::new(&server, pin_cert.as_deref(), None)?;
    let mut request = LoginRequest { username: username.clone(), password: password.clone(), code };
    let mut answer: LoginResponse = match client.post("/login", &request).await {
        Err(e) if e.code() == Some("second_factor_required") && request.code.is_none() => {
            let code = secrets.next("code from your authenticator app (or a recovery code): ")?;
            request.code = Some(code.context("this account signs in with a second factor: give its code (--code)")?);
            client.post("/login", &request).await?
        }
        answer => answer?,
    };
    let mut done = format!("logged in as {username}");
    if answer.technician.must_change_password {
        let one_time = Client::new(&server, pin_cert.as_deref(), Some(answer.token.clone()))?;
        let changed = set_own_password(&one_time, &mut secrets, &username, password).await;
        if changed.is_err() {
            // The one-time token can do nothing but this; it is of no use to anyone now.
            let _ = one_time.post_empty::<()>("/logout").await;
        }
        answer = changed?;
        done = format!("password changed; logged in as {username}");
    }
    if answer.technician.second_factor_required {
        done.push_str("; an administrator requires a second factor: set it up with `deskline second-factor enable`");
    }
    let path = config::save(&Saved { server, token: answer.token, pin_cert })?;
    out.done(&answer.technician, || format!("{done} (token saved to {})", path.display()))
}

/// After signing in with a one-time password: sets the technician's own.
async fn set_own_password<R: std::io::BufRead>(
    client: &Client,
    secrets: &mut Secrets<R>,
    username: &str,
    one_time: String,
) -> anyhow::Result<LoginResponse> {
    let where_from = if secrets.is_terminal() { "type one when asked" } else { "give it on the second line of standard input" };
    let Some(new_password) = secrets.new_password(&format!("new password for {username}: "))? else {
        bail!("{username} signed in with a one-time password and must set a new password: {where_from}; no token was saved");
    };
    Ok(client.post("/me/password", &ChangePassword { current_password: one_time, new_password }).await?)
}

/// The API as one command uses it: technicians and channels are fetched at most once, when
/// first needed (to find one named on the command line, or to show names next to ids).
struct Desk<'a> {
    client: &'a Client,
    technicians: OnceCell<Vec<TechnicianView>>,
    channels: OnceCell<Vec<ChannelView>>,
}

impl<'a> Desk<'a> {
    fn new(client: &'a Client) -> Desk<'a> {
        Desk { client, technicians: OnceCell::new(), channels: OnceCell::new() }
    }

    async fn technicians(&self) -> Result<&[TechnicianView], ApiError> {
        self.technicians.get_or_try_init(|| self.client.get("/technicians")).await.map(Vec::as_slice)
    }

    /// The channels the caller can see (a technician: their own).
    async fn channels(&self) -> Result<&[ChannelView], ApiError> {
        self.channels.get_or_try_init(|| self.client.get("/channels")).await.map(Vec::as_slice)
    }

    async fn names(&self) -> Result<Names<'_>, ApiError> {
        Ok(Names::new(self.technicians().await?, self.channels().await?))
    }

    /// A technician given by id or username.
    async fn technician_id(&self, reference: &str) -> anyhow::Result<i64> {
        if let Ok(id) = reference.parse() {
            return Ok(id);
        }
        let found = self.technicians().await?.iter().find(|t| t.username == reference);
        found.map(|t| t.id).with_context(|| format!("no technician with the username {reference:?}"))
    }

    /// A channel given by id or name.
    async fn channel_id(&self, reference: &str) -> anyhow::Result<i64> {
        if let Ok(id) = reference.parse() {
            return Ok(id);
        }
        let found = self.channels().await?.iter().find(|c| c.name == reference);
        found.map(|c| c.id).with_context(|| format!("no channel named {reference:?} that you can see"))
    }
}

async fn run_signed_in(desk: &Desk<'_>, saved: &Saved, out: &Output, command: Command) -> anyhow::Result<()> {
    let client = desk.client;
    match command {
        Command::Login { .. } => unreachable!("handled before"),
        Command::Password { password_stdin } => {
            let me: TechnicianView = client.get("/me").await?;
            let mut secrets = Secrets::standard(password_stdin);
            let current = secrets.next(&format!("current password for {}: ", me.username))?.context("no current password given")?;
            let new_password = secrets
                .new_password(&format!("new password for {}: ", me.username))?
                .context("no new password given (from standard input: on the second line)")?;
            let answer: LoginResponse = client.post("/me/password", &ChangePassword { current_password: current, new_password }).await?;
            let path = config::save(&Saved { token: answer.token, ..saved.clone() })?;
            out.done(&answer.technician, || {
                format!("password changed for {}; your other sign-ins ended (new token saved to {})", me.username, path.display())
            })?;
        }
        Command::SecondFactor { command } => second_factor(client, saved, out, command).await?,
        Command::Logout => {
            match client.post_empty::<()>("/logout").await {
                // 401: the token had ended already (signed out elsewhere, password changed).
                Err(e) if e.status() != Some(401) => return Err(e.into()),
                _ => {}
            }
            let path = config::remove()?;
            out.done(&json!({ "logged_out": true, "deleted": path }), || {
                format!("logged out{}", path.as_ref().map(|p| format!(" (deleted {})", p.display())).unwrap_or_default())
            })?;
        }
        Command::SupportConfig => {
            let relay: RelayInfo = client.get("/relay").await?;
            let file = RelayFile { relay: relay.quic.clone(), fingerprint: relay.fingerprint.clone() };
            out.done(&relay, || file.to_toml(&relay.organisation).trim_end().to_owned())?;
        }
        Command::Technicians { command } => technicians(desk, out, command).await?,
        Command::Channels { command } => channels(desk, out, command).await?,
        Command::Sessions { command: SessionsCommand::List { home: _, channel, deleted } } => {
            let path = match channel {
                Some(c) => format!("/channels/{}/sessions", desk.channel_id(&c).await?),
                None if deleted => "/sessions?scope=deleted".into(),
                None => "/sessions?scope=home".into(),
            };
            let list: Vec<SessionView> = client.get(&path).await?;
            if !out.print_json(&list)? {
                say!("{}", describe::session_table(&list, &desk.names().await?));
            }
        }
        Command::Session { command } => session(desk, out, command).await?,
        Command::Settings { command: SettingsCommand::Show } => {
            let settings: Settings = client.get("/settings").await?;
            out.done(&settings, || describe::settings(&settings))?;
        }
        Command::Settings { command: SettingsCommand::Set { organisation, require_second_factor } } => {
            if organisation.is_none() && require_second_factor.is_none() {
                bail!("nothing to change: give --organisation or --require-second-factor");
            }
            let patch = SettingsPatch { organisation, require_second_factor };
            let settings: Settings = client.patch("/settings", &patch).await?;
            out.done(&settings, || describe::settings(&settings))?;
        }
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
            let report = json!({"session": id, "events": events.len()});
            out.done(&report, || format!("sent {} input event(s) to session {id}", events.len()))?;
        }
        Command::Clipboard { id, action: ClipboardAction::Send { text } } => {
            let text = match text {
                Some(text) => text,
                None => std::io::read_to_string(std::io::stdin()).context("reading standard input")?,
            };
            let chars = text.chars().count();
            join_session(client, id).await?.send_clipboard(text).await?;
            let report = json!({"session": id, "characters": chars});
            out.done(&report, || format!("put {chars} characters on the end user's clipboard"))?;
        }
        Command::Clipboard { id, action: ClipboardAction::Receive { timeout } } => {
            let text = join_session(client, id).await?.receive_clipboard(Duration::from_secs(timeout)).await?;
            if !out.print_json(&json!({"session": id, "text": text}))? {
                let newline = if text.ends_with('\n') { "" } else { "\n" };
                out_write(format_args!("{text}{newline}"));
            }
        }
    }
    Ok(())
}

async fn technicians(desk: &Desk<'_>, out: &Output, command: TechniciansCommand) -> anyhow::Result<()> {
    let client = desk.client;
    match command {
        TechniciansCommand::List => {
            let list = desk.technicians().await?;
            if !out.print_json(&list)? {
                say!("{}", describe::technician_table(list));
            }
        }
        TechniciansCommand::Create { username, display_name, role } => {
            let password = Secrets::standard(false)
                .new_password(&format!("one-time password for {username}: "))?
                .context("no password given")?;
            let body = CreateTechnician { username, display_name, password, role };
            let t: TechnicianView = client.post("/technicians", &body).await?;
            out.done(&t, || {
                format!("created technician {} (id {}); they set their own password at the first sign-in", t.username, t.id)
            })?;
        }
        TechniciansCommand::Update { technician, display_name, role, disable, enable, reset_password, reset_second_factor } => {
            let id = desk.technician_id(&technician).await?;
            let password = if reset_password {
                let password = Secrets::standard(false).new_password(&format!("one-time password for {technician}: "))?;
                Some(password.context("no one-time password given")?)
            } else {
                None
            };
            let disabled = (disable || enable).then_some(disable);
            let reset_second_factor = reset_second_factor.then_some(true);
            let patch = UpdateTechnician { display_name, role, disabled, password, reset_second_factor };
            if patch.display_name.is_none()
                && patch.role.is_none()
                && patch.disabled.is_none()
                && patch.password.is_none()
                && patch.reset_second_factor.is_none()
            {
                bail!("nothing to change: give --display-name, --role, --disable, --enable, --reset-password or --reset-second-factor");
            }
            let t: TechnicianView = client.patch(&format!("/technicians/{id}"), &patch).await?;
            out.done(&t, || format!("updated technician {} (id {}): {}", t.username, t.id, describe::technician_status(&t)))?;
        }
    }
    Ok(())
}

/// Sets up, turns off or renews the signed-in technician's second factor. Passwords and codes
/// are prompted for, or read from standard input's lines (the password first).
async fn second_factor(client: &Client, saved: &Saved, out: &Output, command: SecondFactorCommand) -> anyhow::Result<()> {
    let mut secrets = Secrets::standard(false);
    let code_prompt = "code from your authenticator app (or a recovery code): ";
    match command {
        SecondFactorCommand::Enable => {
            let password = secrets.next("your password: ")?.context("no password given")?;
            let enrolment: SecondFactorEnrolment = client.post("/me/second-factor", &StartSecondFactor { password }).await?;
            // Shown before the code is asked for: the app must have the secret to show one.
            eprintln!("{}", describe::enrolment(&enrolment)?);
            let code = secrets.next("code the app shows now: ")?.context("no code given; the second factor stays off")?;
            let confirmed: SecondFactorConfirmed = client.post("/me/second-factor/confirm", &SecondFactorCode { code }).await?;
            let path = config::save(&Saved { token: confirmed.token.clone(), ..saved.clone() })?;
            let shown = json!({ "technician": confirmed.technician, "recovery_codes": confirmed.recovery_codes });
            out.done(&shown, || {
                format!(
                    "second factor on; your other sign-ins ended (new token saved to {}).\n{}",
                    path.display(),
                    describe::recovery_codes(&confirmed.recovery_codes)
                )
            })?;
        }
        SecondFactorCommand::Disable => {
            let password = secrets.next("your password: ")?.context("no password given")?;
            let code = secrets.next(code_prompt)?.context("no code given")?;
            let me: TechnicianView = client.post("/me/second-factor/disable", &DisableSecondFactor { password, code }).await?;
            out.done(&me, || format!("second factor off for {}", me.username))?;
        }
        SecondFactorCommand::RecoveryCodes => {
            let code = secrets.next(code_prompt)?.context("no code given")?;
            let codes: RecoveryCodes = client.post("/me/second-factor/recovery-codes", &SecondFactorCode { code }).await?;
            out.done(&codes, || describe::recovery_codes(&codes.recovery_codes))?;
        }
    }
    Ok(())
}

async fn channels(desk: &Desk<'_>, out: &Output, command: ChannelsCommand) -> anyhow::Result<()> {
    let client = desk.client;
    let (channel, what) = match command {
        ChannelsCommand::List => {
            let list = desk.channels().await?;
            if !out.print_json(&list)? {
                say!("{}", describe::channel_table(list, &Names::new(desk.technicians().await?, list)));
            }
            return Ok(());
        }
        ChannelsCommand::Create { name, session_expiry, consent_timeout, max_file_mb, record_sessions, retention_days } => {
            let max_file_bytes = max_file_mb.map(|mb| mb.saturating_mul(MB));
            let body = CreateChannel {
                name,
                session_expiry_secs: session_expiry,
                consent_timeout_secs: consent_timeout,
                max_file_bytes,
                record_sessions: Some(record_sessions),
                recording_retention_days: retention_days,
            };
            let c: ChannelView = client.post("/channels", &body).await?;
            let what = format!("created channel {} (id {})", c.name, c.id);
            (c, what)
        }
        ChannelsCommand::Update { channel, name, session_expiry, consent_timeout, max_file_mb, record_sessions, retention_days } => {
            let patch = UpdateChannel {
                name,
                session_expiry_secs: session_expiry,
                consent_timeout_secs: consent_timeout,
                max_file_bytes: max_file_mb.map(|mb| mb.saturating_mul(MB)),
                record_sessions,
                recording_retention_days: retention_days,
            };
            if patch == UpdateChannel::default() {
                bail!(
                    "nothing to change: give --name, --session-expiry, --consent-timeout, --max-file-mb, --record-sessions or --retention-days"
                );
            }
            let id = desk.channel_id(&channel).await?;
            let c: ChannelView = client.patch(&format!("/channels/{id}"), &patch).await?;
            let what = format!("updated channel {}", c.name);
            (c, what)
        }
        ChannelsCommand::AddMember { channel, technician } => {
            let id = desk.channel_id(&channel).await?;
            let tech = desk.technician_id(&technician).await?;
            let c: ChannelView = client.post(&format!("/channels/{id}/members"), &TechnicianRef { technician_id: tech }).await?;
            let what = format!("added {technician} to {}", c.name);
            (c, what)
        }
        ChannelsCommand::RemoveMember { channel, technician } => {
            let id = desk.channel_id(&channel).await?;
            let tech = desk.technician_id(&technician).await?;
            let c: ChannelView = client.delete(&format!("/channels/{id}/members/{tech}")).await?;
            let what = format!("removed {technician} from {}", c.name);
            (c, what)
        }
    };
    out.done(&channel, || what)
}

async fn session(desk: &Desk<'_>, out: &Output, command: SessionCommand) -> anyhow::Result<()> {
    let client = desk.client;
    let (s, what): (SessionView, String) = match command {
        SessionCommand::New { channel, kind, name } => {
            let id = desk.channel_id(&channel).await?;
            let kind = if kind.pin { SessionKind::Pin } else { SessionKind::Link };
            let s: SessionView = client.post(&format!("/channels/{id}/sessions"), &CreateSession { kind, name }).await?;
            let what = format!("created session {}: {}", s.id, describe::session_code(&s));
            (s, what)
        }
        SessionCommand::Show { id } => {
            let s: SessionView = client.get(&format!("/sessions/{id}")).await?;
            if !out.print_json(&s)? {
                say!("{}", describe::session_detail(&s, &desk.names().await?));
            }
            return Ok(());
        }
        SessionCommand::Assign { id, technician } => {
            let tech = desk.technician_id(&technician).await?;
            let s = client.post(&format!("/sessions/{id}/assign"), &TechnicianRef { technician_id: tech }).await?;
            (s, format!("session {id} assigned to {technician}"))
        }
        SessionCommand::Transfer { id, technician, channel } => {
            let body = match (technician, channel) {
                (Some(t), _) => TransferRequest { technician_id: Some(desk.technician_id(&t).await?), channel_id: None },
                (None, Some(c)) => TransferRequest { technician_id: None, channel_id: Some(desk.channel_id(&c).await?) },
                (None, None) => bail!("give --technician or --channel"),
            };
            (client.post(&format!("/sessions/{id}/transfer"), &body).await?, format!("session {id} transferred"))
        }
        SessionCommand::Invite { id, technician } => {
            let tech = desk.technician_id(&technician).await?;
            let s = client.post(&format!("/sessions/{id}/invite"), &TechnicianRef { technician_id: tech }).await?;
            (s, format!("{technician} invited to session {id}"))
        }
        SessionCommand::Uninvite { id, technician } => {
            let tech = desk.technician_id(&technician).await?;
            let s = client.delete(&format!("/sessions/{id}/invited/{tech}")).await?;
            (s, format!("{technician} is no longer on session {id}"))
        }
        SessionCommand::Release { id } => (client.post_empty(&format!("/sessions/{id}/release")).await?, format!("session {id} released")),
        SessionCommand::Close { id } => (client.post_empty(&format!("/sessions/{id}/close")).await?, format!("session {id} closed")),
        SessionCommand::Delete { id } => (client.delete(&format!("/sessions/{id}")).await?, format!("session {id} deleted")),
        SessionCommand::Remote { id, view_only, ask } => {
            let capabilities = match ask {
                Some(ask) => ask.names().join(","),
                None if view_only => "view".into(),
                None => "view,control".into(),
            };
            let body = RemoteRequest { capabilities: Some(capabilities) };
            (client.post(&format!("/sessions/{id}/remote"), &body).await?, format!("asked the end user of session {id} for consent"))
        }
        SessionCommand::Chat { id, text: Some(text) } => {
            let line: ChatMessageView = client.post(&format!("/sessions/{id}/chat"), &NewChatMessage { text }).await?;
            if !out.print_json(&line)? {
                say!("sent to session {id} at {}", line.at);
            }
            return Ok(());
        }
        SessionCommand::Chat { id, text: None } => {
            let lines: Vec<ChatMessageView> = client.get(&format!("/sessions/{id}/chat")).await?;
            if !out.print_json(&lines)? {
                say!("{}", describe::chat_table(&lines));
            }
            return Ok(());
        }
        SessionCommand::Send { id, file, timeout } => {
            let viewer = join_session(client, id).await?;
            let bar = progress_bar();
            bar.set_message(format!("waiting for the end user to accept {}", file.display()));
            let saved = viewer
                .send_file(
                    &file,
                    Duration::from_secs(timeout),
                    |size| {
                        bar.set_length(size);
                        bar.set_message(format!("sending {}", file.display()));
                    },
                    |sent| bar.set_position(sent),
                )
                .await;
            bar.finish_and_clear();
            let saved = saved?;
            let report = json!({"session": id, "saved_as": saved});
            out.done(&report, || format!("the end user saved it as {saved}"))?;
            return Ok(());
        }
        SessionCommand::Receive { id, dir, timeout } => {
            if !dir.is_dir() {
                bail!("{} is not a folder", dir.display());
            }
            let viewer = join_session(client, id).await?;
            let bar = progress_bar();
            bar.set_message("waiting for the end user to send a file");
            let saved = viewer
                .receive_file(
                    &dir,
                    Duration::from_secs(timeout),
                    |offer| {
                        bar.set_length(offer.size);
                        bar.set_message(format!("receiving {}", offer.name));
                    },
                    |got| bar.set_position(got),
                )
                .await;
            bar.finish_and_clear();
            let saved = saved?;
            let report = json!({"session": id, "saved": saved});
            out.done(&report, || format!("saved {}", saved.display()))?;
            return Ok(());
        }
        SessionCommand::Recordings { id } => {
            let recordings: Vec<deskline_api::RecordingView> = client.get(&format!("/sessions/{id}/recordings")).await?;
            if !out.print_json(&recordings)? {
                say!("{}", describe::recording_table(&recordings));
            }
            return Ok(());
        }
        SessionCommand::Recording { recording, file } => {
            // The log first: a recording that is not there (or not yours) writes no file.
            let log: Vec<deskline_api::RecordingLogLine> = client.get(&format!("/recordings/{recording}/log")).await?;
            let bytes = client.download(&format!("/recordings/{recording}/video"), &file, &progress_bar()).await?;
            if !out.print_json(&log)? {
                say!("{}", describe::recording_log(&log));
                eprintln!("saved recording {recording} ({bytes} bytes) as {}", file.display());
            }
            return Ok(());
        }
        SessionCommand::Events { id } => {
            let events: Vec<deskline_api::AuditEventView> = client.get(&format!("/sessions/{id}/events")).await?;
            if !out.print_json(&events)? {
                say!("{}", describe::event_table(&events, &desk.names().await?));
            }
            return Ok(());
        }
    };
    out.done(&s, || what)
}

/// A megabyte as the channel settings count it (the file limit's unit on the command line).
const MB: i64 = 1024 * 1024;

/// A progress bar for a file on standard error (hidden when it is not a terminal).
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Joins a session over QUIC: where the relay's QUIC endpoint is and which certificate to
/// pin come from the (already trusted) HTTPS API.
async fn join_session(client: &Client, id: i64) -> anyhow::Result<Viewer> {
    // The relay node the session's app is connected to (several may share the database), and
    // this API's own, which knows where the session went if that node dies.
    let media: RelayInfo = client.get(&format!("/sessions/{id}/relay")).await?;
    let own: RelayInfo = client.get("/relay").await?;
    let me: TechnicianView = client.get("/me").await?;
    let target = RelayTarget::resolve(&media.quic, &media.fingerprint).await?;
    let home = RelayTarget::resolve(&own.quic, &own.fingerprint).await?;
    Ok(viewer::join_from(&home, &target, client.token().unwrap_or_default(), SessionId(id), TechnicianId(me.id)).await?)
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
    let mut reconnects = 0;
    let result = viewer
        .watch_reporting(
            timeout,
            |frame| {
                if display.is_some_and(|d| d != frame.display) {
                    return true;
                }
                latencies.push(frame.latency_us);
                bytes += frame.bytes;
                last = Some(frame);
                latencies.len() < wanted
            },
            |why| {
                reconnects += 1;
                eprintln!("lost the relay ({why}); reconnecting");
            },
        )
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
        "reconnects": reconnects,
        "latency_capture_to_decoded": viewer::latency_summary(latencies.clone()),
        "saved": saved,
    });
    say!("{}", serde_json::to_string_pretty(&report)?);
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

/// Prints for people or, with `--json`, the API's answer (re-serialised from the shared type:
/// the same fields with the same meaning).
struct Output {
    json: bool,
}

impl Output {
    /// With `--json`, prints `value` and says so.
    fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<bool> {
        if self.json {
            say!("{}", serde_json::to_string_pretty(value)?);
        }
        Ok(self.json)
    }

    /// Prints `value` with `--json`, else the message.
    fn done<T: Serialize + ?Sized>(&self, value: &T, message: impl FnOnce() -> String) -> anyhow::Result<()> {
        if !self.print_json(value)? {
            say!("{}", message());
        }
        Ok(())
    }
}
