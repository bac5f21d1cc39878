//! `deskline-agent`: the support app.
//!
//! With a window (the default): PIN entry when no code is given, the consent popup, and the
//! session bar while sharing. `--auto-consent` runs it unattended instead (demos, tests).
//! Logs go to `agent.log` in the platform's place for them: `$XDG_STATE_HOME/deskline`
//! (`~/.local/state/deskline`) on Linux, `%LOCALAPPDATA%\Deskline` on Windows.

// On Windows the app is a GUI program: no console window opens beside the popup.
#![cfg_attr(windows, windows_subsystem = "windows")]

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use deskline_agent::capture::{self, DEFAULT_BITRATE_BPS, DisplayOrigin, ScreenSource};
use deskline_agent::rate::Rate;
use deskline_agent::session::{AgentCommand, AgentConfig, AgentError, AgentEvent, ClipboardNote, Ended, Registered, register};
use deskline_agent::ui::{AgentUi, NetUpdate, UiAction, UiPrompt};
use deskline_agent::grants::Grants;
use deskline_agent::platform::{System as _, native};
use deskline_agent::{ConsentPrompt, EncodeError, InputSink, ScriptedAnswer, ScriptedPrompt, SyntheticSource};
use deskline_net::relay_file::RelayFile;
use deskline_protocol::{AppCode, AppInfo, DisplayInfo, Pin, RejectReason, ResumeSecret, SessionLink};
use eframe::egui;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Parser, Clone)]
#[command(name = "deskline-agent", version, about = "Deskline support app")]
struct Cli {
    /// The 6-digit PIN the technician gave you (asked in the window when missing).
    #[arg(long, conflicts_with = "link")]
    pin: Option<String>,
    /// The invite link (https://RELAY/s/TOKEN) or its token. Without a link or PIN, the link
    /// a download from the invite page carries is used.
    #[arg(long)]
    link: Option<String>,
    /// The relay's QUIC address, host:port (taken from the link when it names one, else from
    /// support.toml: `~/.config/deskline/` or `/etc/deskline/` on Linux, `%APPDATA%\Deskline`
    /// or `%ProgramData%\Deskline` on Windows). Several relay nodes: separated by commas, in the
    /// order to try when the one connected to is gone.
    #[arg(long)]
    relay: Option<String>,
    /// The relay certificate's SHA-256 fingerprint (taken from the link when it carries one,
    /// else from support.toml).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Stream a synthetic test pattern of WIDTHxHEIGHT instead of the screen, and print input
    /// instead of injecting it.
    #[arg(long, value_name = "WIDTHxHEIGHT")]
    synthetic: Option<String>,
    /// Answer consent requests without a window (demos and tests). Chat lines received are
    /// printed; lines written to standard input are sent as chat lines.
    #[arg(long, value_enum)]
    auto_consent: Option<AutoConsent>,
}

#[derive(Clone, Copy, ValueEnum)]
enum AutoConsent {
    Allow,
    ViewOnly,
    Deny,
}

/// How long to keep trying to resume after the connection drops (the relay keeps consent this
/// long).
const RESUME_WINDOW: Duration = Duration::from_secs(55);

/// How long one try to reach the relay again may take (a handshake takes a round trip or two;
/// a relay that is down never answers).
const RECONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    native::Facts::prepare();
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let code = initial_code(&cli)?;
    let config = runtime.block_on(config(&cli, code.clone()));
    match cli.auto_consent {
        Some(answer) => runtime.block_on(unattended(cli, config?, answer)),
        None => windowed(&runtime, cli, config, code.is_some()),
    }
}

/// The QUIC port a relay listens on unless told otherwise.
const DEFAULT_QUIC: &str = "127.0.0.1:4433";

/// The link given, or, with neither a link nor a PIN, the one this download carries.
fn link(cli: &Cli) -> anyhow::Result<Option<SessionLink>> {
    let text = match (&cli.link, &cli.pin) {
        (Some(link), _) => Some(link.clone()),
        (None, None) => deskline_agent::download::carried_link(&std::env::current_exe()?)?,
        (None, Some(_)) => None,
    };
    text.map(|l| l.parse::<SessionLink>().context("the link")).transpose()
}

fn initial_code(cli: &Cli) -> anyhow::Result<Option<AppCode>> {
    Ok(match (&cli.pin, link(cli)?) {
        (Some(pin), _) => Some(AppCode::Pin(pin.parse::<Pin>().context("the PIN")?)),
        (None, Some(link)) => Some(AppCode::Link(link.token)),
        (None, None) => None,
    })
}

async fn config(cli: &Cli, code: Option<AppCode>) -> anyhow::Result<AgentConfig> {
    let link = link(cli)?;
    let mut relay_text = cli.relay.clone().or_else(|| link.as_ref().and_then(|l| l.quic.clone()));
    let mut fingerprint = cli.fingerprint.clone().or_else(|| link.as_ref().and_then(|l| l.sha256.clone()));
    if relay_text.is_none() || fingerprint.is_none() {
        // An installed app (no link written into it): the help desk's relay from support.toml.
        if let Some(file) = RelayFile::find(&native::Facts::relay_files())? {
            relay_text.get_or_insert(file.relay);
            fingerprint.get_or_insert(file.fingerprint);
        }
    }
    let relay_text = relay_text.unwrap_or_else(|| DEFAULT_QUIC.into());
    let fingerprint = fingerprint.context(
        "This support app does not know your help desk's server. Open the link your technician sent you, \
         or ask your IT department to set it up (the file support.toml).",
    )?;
    let relays: Vec<String> = relay_text.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
    // The first relay that resolves; the others are tried when it cannot be reached.
    let mut first = None;
    for text in &relays {
        if let Some(addr) = tokio::net::lookup_host(text).await.ok().and_then(|mut a| a.next()) {
            first = Some((addr, deskline_net::quic::server_name(text)));
            break;
        }
    }
    let (relay, server_name) = first.context("cannot resolve the relay")?;
    Ok(AgentConfig {
        relay,
        server_name,
        fingerprint: Some(deskline_net::tls::parse_fingerprint(&fingerprint)?),
        // A placeholder until the end user types a PIN.
        code: code.unwrap_or(AppCode::Pin(Pin::from_number(0).context("PIN 0")?)),
        relays: if relays.len() > 1 { relays } else { Vec::new() },
    })
}

fn init_logging() {
    let file = native::Facts::log_dir().and_then(|d| {
        std::fs::create_dir_all(&d).ok()?;
        std::fs::OpenOptions::new().create(true).append(true).open(d.join("agent.log")).ok()
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match file {
        Some(file) => tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init(),
        None => tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init(),
    }
}

/// The frames and input of this run: the real screen and input, or the synthetic pattern.
#[derive(Clone)]
enum Media {
    Screen,
    Synthetic(u32, u32),
}

impl Media {
    fn from_cli(cli: &Cli) -> anyhow::Result<Media> {
        match &cli.synthetic {
            None => Ok(Media::Screen),
            Some(size) => {
                let (w, h) = size.split_once('x').context("--synthetic is WIDTHxHEIGHT")?;
                Ok(Media::Synthetic(w.parse()?, h.parse()?))
            }
        }
    }

    fn displays(&self) -> Vec<DisplayInfo> {
        match self {
            Media::Screen => capture::displays().unwrap_or_default(),
            Media::Synthetic(w, h) => {
                vec![DisplayInfo { id: 0, name: "synthetic".into(), width: *w, height: *h, primary: true }]
            }
        }
    }

    fn info(&self) -> AppInfo {
        AppInfo {
            os: native::Facts::os_name(),
            host_name: native::Facts::host_name(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            displays: self.displays(),
        }
    }

    async fn serve<P: ConsentPrompt>(
        &self,
        registered: Registered,
        prompt: Arc<P>,
        previous: Grants,
        events: mpsc::UnboundedSender<AgentEvent>,
        commands: mpsc::UnboundedReceiver<AgentCommand>,
    ) -> Result<Ended, AgentError> {
        match *self {
            Media::Screen => {
                let origin = DisplayOrigin::default();
                let sink = native::Input::new(origin.clone()).map_err(|e| AgentError::Protocol(e.to_string()))?;
                let rate = Rate { fps: deskline_agent::limits::MAX_FPS, bitrate_bps: DEFAULT_BITRATE_BPS };
                let make = move || ScreenSource::<native::Desktop>::primary(rate, origin).map_err(EncodeError::from);
                registered.serve(make, sink, prompt, previous, events, commands).await
            }
            Media::Synthetic(w, h) => {
                let make = move || SyntheticSource::new(w, h);
                registered.serve(make, PrintSink, prompt, previous, events, commands).await
            }
        }
    }
}

/// Prints the input it would inject (with the synthetic source).
struct PrintSink;

impl InputSink for PrintSink {
    fn apply(&mut self, event: &deskline_protocol::InputEvent) -> anyhow::Result<()> {
        println!("input: {event:?}");
        Ok(())
    }

    fn release_all(&mut self) {
        println!("input: release all");
    }
}

/// Without a window: the same connection as the window's (registration, consent, resumption
/// after a drop), with consent answered as told and everything printed.
async fn unattended(cli: Cli, config: AgentConfig, answer: AutoConsent) -> anyhow::Result<()> {
    let media = Media::from_cli(&cli)?;
    let prompt = ScriptedPrompt {
        answer: match answer {
            AutoConsent::Allow => ScriptedAnswer::AllowAll,
            AutoConsent::ViewOnly => ScriptedAnswer::AllowViewOnly,
            AutoConsent::Deny => ScriptedAnswer::Deny,
        },
        delay: Duration::ZERO,
    };
    let (actions, actions_rx) = mpsc::unbounded_channel();
    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    tokio::spawn(connection(config, media, true, actions_rx, updates_tx));
    let mut input = Some(tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin())));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let _ = actions.send(UiAction::Command(AgentCommand::Disconnect));
            }
            line = async { input.as_mut()?.next_line().await.ok().flatten() }, if input.is_some() => match line {
                // "/send PATH" sends a file to the technicians; any other line is a chat line.
                Some(line) if line.trim().starts_with("/send ") => {
                    let path = std::path::PathBuf::from(line.trim()["/send ".len()..].trim());
                    let transfer = deskline_agent::source::now_us();
                    let _ = actions.send(UiAction::Command(AgentCommand::SendFile { transfer, path }));
                }
                Some(line) if !line.trim().is_empty() => {
                    let _ = actions.send(UiAction::Command(AgentCommand::Chat(line.trim().to_owned())));
                }
                Some(_) => {}
                // Standard input closed (or unreadable): nothing more to send.
                None => input = None,
            },
            update = updates.recv() => match update {
                Some(NetUpdate::ConsentAsked(request, answer)) => {
                    println!("consent asked by {} for {}", request.technician, request.capabilities);
                    let _ = answer.send(prompt.ask(&request).await);
                }
                Some(NetUpdate::Connected { organisation, relay }) => println!("connected to {organisation} ({relay})"),
                Some(NetUpdate::Reconnecting) => println!("connection lost; reconnecting"),
                Some(NetUpdate::ConsentExpired(_)) => println!("consent request timed out"),
                Some(NetUpdate::Connecting) => {}
                Some(NetUpdate::Event(AgentEvent::Chat(line))) => {
                    let who = match &line.from {
                        deskline_protocol::ChatFrom::EndUser => "you",
                        deskline_protocol::ChatFrom::Technician { name, .. } => name.as_str(),
                    };
                    println!("chat from {who}: {}", line.text);
                }
                // Allowed: every file is saved in the Downloads folder (never over a file there);
                // otherwise declined.
                Some(NetUpdate::Event(AgentEvent::FileOffered(offer))) => {
                    println!("file offered by {}: {} ({} bytes)", offer.from, offer.name, offer.size);
                    let folder = matches!(answer, AutoConsent::Allow).then(native::Facts::downloads).flatten();
                    if let Some(folder) = &folder {
                        let _ = std::fs::create_dir_all(folder);
                    }
                    let save_to = folder.map(|f| f.join(&offer.name));
                    let _ = actions.send(UiAction::Command(AgentCommand::AnswerFile { transfer: offer.transfer, save_to }));
                }
                Some(NetUpdate::Event(AgentEvent::FileProgress { .. })) => {}
                Some(NetUpdate::Event(AgentEvent::FileDone { incoming, name, saved, message, .. })) => match (incoming, saved) {
                    (true, true) => println!("file saved: {message}"),
                    (false, true) => println!("file sent: {name}"),
                    (_, false) => println!("file not passed: {name}: {message}"),
                },
                Some(NetUpdate::Event(AgentEvent::Clipboard(note))) => match note {
                    ClipboardNote::Received { from, chars } => println!("clipboard from {from}: {chars} characters"),
                    ClipboardNote::Sent { chars } => println!("clipboard sent: {chars} characters"),
                    ClipboardNote::TooLong { bytes } => println!("clipboard too long to send: {bytes} bytes"),
                },
                Some(NetUpdate::Event(event)) => println!("{event:?}"),
                Some(NetUpdate::Ended(message)) => {
                    println!("{message}");
                    return Ok(());
                }
                Some(NetUpdate::Failed { message, .. }) => bail!("{message}"),
                None => return Ok(()),
            },
        }
    }
}

/// What to tell the end user about a refused or failed registration.
fn explain(e: &AgentError) -> (String, bool, bool) {
    match e {
        AgentError::Rejected { reason, .. } => {
            let text = match reason {
                RejectReason::UnknownCode => "This code is not valid. Check the 6 digits with your technician.",
                RejectReason::Expired => "This session has expired. Ask your technician for a new code.",
                RejectReason::Closed => "This session was closed by the technician.",
                RejectReason::RateLimited { .. } => "Too many wrong codes. Wait a minute, then try again.",
                RejectReason::CodeInUse => "Another support app is already connected with this code.",
                RejectReason::UnsupportedVersion { .. } => "This support app is too old for the server. Download it again.",
                _ => "The support server refused the connection.",
            };
            let new_code = matches!(reason, RejectReason::UnknownCode | RejectReason::Expired | RejectReason::Closed | RejectReason::RateLimited { .. });
            (text.to_owned(), false, new_code)
        }
        AgentError::Net(_) => ("Cannot reach the support server. Check your internet connection.".to_owned(), true, false),
        AgentError::Protocol(_) => ("The support server answered something unexpected.".to_owned(), true, false),
    }
}

/// The connection behind the window: waits for a code, registers, serves, resumes after drops.
async fn connection(
    mut config: AgentConfig,
    media: Media,
    mut have_code: bool,
    mut actions: mpsc::UnboundedReceiver<UiAction>,
    updates: mpsc::UnboundedSender<NetUpdate>,
) {
    let mut resume: Option<(ResumeSecret, Grants)> = None;
    // Until when a lost connection may still be resumed (the relay's grace window).
    let mut resume_until = tokio::time::Instant::now();
    // Whether the other relay nodes were tried since the last registration.
    let mut tried_others = false;
    loop {
        if !have_code {
            loop {
                match actions.recv().await {
                    Some(UiAction::Connect(pin)) => {
                        config.code = AppCode::Pin(pin);
                        break;
                    }
                    Some(UiAction::Retry) => break,
                    Some(UiAction::Command(_)) => {}
                    None => return,
                }
            }
        }
        have_code = true;
        if resume.is_none() {
            let _ = updates.send(NetUpdate::Connecting);
        }
        let mut registered = match register(&config, media.info(), resume.as_ref().map(|(s, _)| s.clone())).await {
            Ok(r) => r,
            // Resuming, the relay can still be going down or coming up (a restart, an
            // upgrade): keep trying within the window rather than giving up on the first try.
            Err(AgentError::Net(e)) if resume.is_some() && tokio::time::Instant::now() < resume_until => {
                tracing::warn!(error = %e, "resuming: the relay is not back yet");
                if resume_within_window(&mut config, &updates, resume_until).await {
                    continue;
                }
                lost(&updates);
                have_code = false;
                resume = None;
                continue;
            }
            // Several relay nodes: the first is down; another one that answers is used.
            Err(AgentError::Net(e)) if !config.relays.is_empty() && !tried_others => {
                tracing::warn!(error = %e, "the relay does not answer; trying the others");
                tried_others = true;
                if !config.reach(RECONNECT_ATTEMPT_TIMEOUT).await {
                    let (message, retry, new_code) = explain(&AgentError::Net(e));
                    let _ = updates.send(NetUpdate::Failed { message, retry, new_code });
                    have_code = false;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "registration failed");
                let (message, retry, new_code) = explain(&e);
                let _ = updates.send(NetUpdate::Failed { message, retry, new_code });
                have_code = false;
                resume = None;
                continue;
            }
        };
        tried_others = false;
        let _ = updates.send(NetUpdate::Connected {
            organisation: registered.welcome().organisation.clone(),
            relay: config.server_name.clone(),
        });
        // Who is signed in, the processor, memory and uptime, for the technician's detail (the
        // session goes on without them).
        if let Err(e) = registered.tell_machine(native::Facts::machine()).await {
            tracing::warn!(error = %e, "telling the relay about the machine");
        }
        let secret = registered.welcome().resume.clone();
        let previous = resume.take().map(|(_, g)| g).unwrap_or_default();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let prompt = Arc::new(UiPrompt::new(updates.clone()));
        let mut granted = previous.clone();
        let serving = media.serve(registered, prompt, previous, events_tx, commands_rx);
        tokio::pin!(serving);
        let ended = loop {
            tokio::select! {
                ended = &mut serving => break ended,
                Some(event) = events_rx.recv() => {
                    if let AgentEvent::Access(g) = &event {
                        granted = g.clone();
                    }
                    let _ = updates.send(NetUpdate::Event(event));
                }
                action = actions.recv() => match action {
                    Some(UiAction::Command(c)) => { let _ = commands_tx.send(c); }
                    Some(_) => {}
                    None => { let _ = commands_tx.send(AgentCommand::Disconnect); }
                },
            }
        };
        match ended {
            Ok(Ended::ByRelay(bye)) => {
                let _ = updates.send(NetUpdate::Ended(format!("The session ended: {}.", bye.message)));
                return;
            }
            Ok(Ended::Disconnected) => {
                let _ = updates.send(NetUpdate::Ended("You left the session.".into()));
                return;
            }
            Ok(Ended::ConnectionLost(why)) | Err(AgentError::Protocol(why)) => {
                tracing::warn!(%why, "connection lost; resuming");
                resume = secret.map(|s| (s, granted));
                resume_until = tokio::time::Instant::now() + RESUME_WINDOW;
                if resume.is_none() || !resume_within_window(&mut config, &updates, resume_until).await {
                    lost(&updates);
                    have_code = false;
                    resume = None;
                }
            }
            Err(e) => {
                let (message, retry, new_code) = explain(&e);
                let _ = updates.send(NetUpdate::Failed { message, retry, new_code });
                have_code = false;
            }
        }
    }
}

/// Tells the window the connection is gone and could not be resumed: the end user may try again.
fn lost(updates: &mpsc::UnboundedSender<NetUpdate>) {
    let _ = updates.send(NetUpdate::Failed {
        message: "The connection to the support server was lost.".into(),
        retry: true,
        new_code: false,
    });
}

/// Waits until the relay — or, several relay nodes, any of them — is reachable again (within
/// the resume window); the caller then registers there with the resumption secret.
async fn resume_within_window(config: &mut AgentConfig, updates: &mpsc::UnboundedSender<NetUpdate>, deadline: tokio::time::Instant) -> bool {
    // Nothing is shared while there is no connection; the window says so.
    let _ = updates.send(NetUpdate::Reconnecting);
    while tokio::time::Instant::now() < deadline {
        // A relay that is down does not answer at all: give each try a short bound rather than
        // QUIC's idle timeout, so the app is back within seconds of the relay.
        if config.reach(RECONNECT_ATTEMPT_TIMEOUT).await {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// The window: the UI on the main thread, the connection on the runtime.
/// A `config` that failed (no relay known, a broken support.toml) is said in the window: an app
/// started from a desktop menu has no terminal.
fn windowed(runtime: &tokio::runtime::Runtime, cli: Cli, config: anyhow::Result<AgentConfig>, have_code: bool) -> anyhow::Result<()> {
    let media = Media::from_cli(&cli)?;
    let (actions_tx, actions_rx) = mpsc::unbounded_channel();
    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    match config {
        Ok(config) => drop(runtime.spawn(connection(config, media, have_code, actions_rx, updates_tx))),
        Err(e) => {
            tracing::error!("{e:#}");
            let _ = updates_tx.send(NetUpdate::Failed { message: format!("{e:#}"), retry: false, new_code: false });
        }
    }
    let app = AgentApp { ui: AgentUi::new(actions_tx, updates_rx, have_code), on_top: false, styled: false, height: WINDOW_HEIGHT };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([WINDOW_WIDTH, WINDOW_HEIGHT])
            .with_title("Deskline support")
            .with_resizable(false),
        ..Default::default()
    };
    eframe::run_native(
        "Deskline support",
        options,
        Box::new(|cc| {
            if let Err(why) = native::Facts::keep_out_of_capture(cc) {
                tracing::info!(%why, "the app's window may appear in the shared picture");
            }
            Ok(Box::new(app))
        }),
    )
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The window's width; its height follows what it shows (a short session bar, a taller
/// consent popup), between these bounds.
const WINDOW_WIDTH: f32 = 600.0;
const WINDOW_HEIGHT: f32 = 270.0;
const WINDOW_HEIGHTS: std::ops::RangeInclusive<f32> = 120.0..=560.0;

struct AgentApp {
    ui: AgentUi,
    on_top: bool,
    /// The window's height as last asked of the system.
    height: f32,
    /// The readable text sizes are set (on the first frame: eframe sets its own style after
    /// the app is created).
    styled: bool,
}

impl eframe::App for AgentApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.ui.set_dialog_parent(deskline_widgets::Parent::of(frame));
        if !self.styled {
            self.styled = true;
            deskline_agent::ui::readable_text(&ctx);
        }
        // Where the content ends (the panel itself always fills the window).
        let bottom = egui::CentralPanel::default_margins()
            .show(ui, |ui| {
                self.ui.show(ui);
                ui.cursor().min.y
            })
            .inner;
        // Fit the window's height to what it shows (text wraps at the fixed width, so the
        // height settles at once): no empty half-window under a two-line session bar.
        let wanted = (bottom + 20.0).round().clamp(*WINDOW_HEIGHTS.start(), *WINDOW_HEIGHTS.end());
        if (wanted - self.height).abs() > 2.0 {
            self.height = wanted;
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(WINDOW_WIDTH, wanted)));
        }
        // The consent prompt and the session bar stay above every other window.
        let want_on_top = self.ui.asking() || self.ui.sharing();
        if want_on_top != self.on_top {
            self.on_top = want_on_top;
            let level = if want_on_top { egui::WindowLevel::AlwaysOnTop } else { egui::WindowLevel::Normal };
            ctx.send_viewport_cmd(egui::ViewportCommand::WindowLevel(level));
            if self.ui.asking() {
                ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
                ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(egui::UserAttentionType::Critical));
            }
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }
}
