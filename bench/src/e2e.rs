//! End-to-end latency over loopback: a real relay (in this process, real QUIC and TLS), the
//! support app's connection logic with the synthetic source (really H.264-encoded), and the
//! technician's viewer decoding. Capture → decoded, and input sent → applied.

use crate::stats::{Summary, summarize};
use anyhow::Context as _;
use deskline_agent::session::{AgentConfig, register};
use deskline_agent::{InputSink, ScriptedAnswer, ScriptedPrompt, SyntheticSource};
use deskline_console::viewer::{self, RelayTarget, ViewerCommand, ViewerUpdate};
use deskline_protocol::{AppCode, AppInfo, InputEvent, SessionId, TechnicianId};
use deskline_relay::server::LocalRelay;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct E2eResult {
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames measured.
    pub frames: usize,
    /// Capture → decoded, milliseconds.
    pub frame_latency_ms: Option<Summary>,
    /// Input sent by the viewer → applied by the app, milliseconds.
    pub input_latency_ms: Option<Summary>,
    /// Every capture → decoded sample (for plots).
    #[serde(skip)]
    pub frame_samples_ms: Vec<f64>,
}

/// Records when each input event was applied.
#[derive(Clone, Default)]
struct TimedSink(Arc<Mutex<Vec<Instant>>>);

impl InputSink for TimedSink {
    fn apply(&mut self, _event: &InputEvent) -> anyhow::Result<()> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
        Ok(())
    }
    fn release_all(&mut self) {}
}

/// A relay in this process with one PIN session whose support app (the real connection
/// logic, in this process) streams the synthetic pattern, consent granted for view and control.
pub struct SyntheticSession {
    /// The relay (stops when dropped).
    pub relay: LocalRelay,
    /// The admin's API token.
    pub token: String,
    /// The session.
    pub id: SessionId,
    /// The certificate's SHA-256.
    pub fingerprint: [u8; 32],
    /// When each input event reached the app.
    pub applied: Arc<Mutex<Vec<Instant>>>,
    /// The admin's API client.
    pub admin: deskline_console::client::Client,
    /// What the end user does in the app (take back control, stop sharing).
    pub end_user: tokio::sync::mpsc::UnboundedSender<deskline_agent::session::AgentCommand>,
    _dir: tempfile::TempDir,
}

impl SyntheticSession {
    /// Starts it all with `width` × `height` frames.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<SyntheticSession> {
        let dir = tempfile::tempdir()?;
        let relay = LocalRelay::start(dir.path().join("relay"), "Bench")?;
        let (server, fingerprint, quic, password) = (&relay.base_url, &relay.fingerprint, relay.quic, &relay.admin_password);
        let crate::api::SignedIn { client: admin, token, .. } = crate::api::sign_in(server, fingerprint, "admin", password).await?;
        let session = crate::api::pin_session(&admin).await?;
        let id = session.id;
        let pin = session.pin.as_deref().context("pin")?.parse()?;

        let pin_bytes = deskline_net::tls::parse_fingerprint(fingerprint)?;
        let config = AgentConfig { relay: quic, server_name: "localhost".into(), fingerprint: Some(pin_bytes), code: AppCode::Pin(pin), relays: Vec::new() };
        let info = AppInfo { os: "bench".into(), host_name: "bench".into(), app_version: "0".into(), displays: vec![] };
        let registered = register(&config, info, None).await?;
        let sink = TimedSink::default();
        let applied = sink.0.clone();
        let prompt = Arc::new(ScriptedPrompt { answer: ScriptedAnswer::AllowAll, delay: Duration::ZERO });
        let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (end_user, commands_rx) = tokio::sync::mpsc::unbounded_channel();
        let make = move || SyntheticSource::new(width, height);
        tokio::spawn(async move {
            let _keep = _events_rx;
            let _ = registered.serve(make, sink, prompt, deskline_agent::grants::Grants::default(), events, commands_rx).await;
        });
        crate::api::ask_consent(&admin, id).await?;
        crate::api::wait_until(&admin, id, 100, Duration::from_millis(20), |s| s.consent.status == "granted").await?;
        Ok(SyntheticSession { relay, token, id: SessionId(id), fingerprint: pin_bytes, applied, admin, end_user, _dir: dir })
    }

    /// Joins as a native viewer over QUIC.
    pub async fn native_viewer(&self) -> anyhow::Result<viewer::Viewer> {
        let target = RelayTarget { quic: self.relay.quic, server_name: "localhost".into(), fingerprint: self.fingerprint };
        Ok(viewer::join(&target, &self.token, self.id, TechnicianId(1)).await?)
    }
}

/// Runs the measurement.
pub async fn run(width: u32, height: u32, frames: usize, inputs: usize) -> anyhow::Result<E2eResult> {
    let session = SyntheticSession::start(width, height).await?;
    let applied = session.applied.clone();
    let (commands, mut updates) = session.native_viewer().await?.spawn();
    // Skip the first frames: the decoder and caches warm up.
    let warmup = 10;
    let mut latencies = Vec::new();
    let mut seen = 0;
    let mut have_control = false;
    commands.send(ViewerCommand::TakeControl).ok();
    while latencies.len() < frames {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await? {
            Some(ViewerUpdate::Frame(frame)) => {
                seen += 1;
                if seen > warmup {
                    latencies.push(frame.latency_us as f64 / 1000.0);
                }
            }
            Some(ViewerUpdate::Controller(holder)) => have_control |= holder == Some(TechnicianId(1)),
            Some(
                ViewerUpdate::Displays(_)
                | ViewerUpdate::Allowed(_)
                | ViewerUpdate::Paused(_)
                | ViewerUpdate::Reconnecting(_)
                | ViewerUpdate::Chat(_)
                | ViewerUpdate::Clipboard(_)
                | ViewerUpdate::File(_),
            ) => {}
            Some(ViewerUpdate::Ended(e)) => anyhow::bail!("the viewer ended: {e:?}"),
            None => anyhow::bail!("the viewer stopped"),
        }
    }
    // Input: pointer moves spaced out, each timed from send to apply.
    let mut sent = Vec::new();
    if have_control {
        for i in 0..inputs {
            sent.push(Instant::now());
            commands.send(ViewerCommand::Input(InputEvent::PointerMove { x: i as u32, y: i as u32 })).ok();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let applied = applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let input: Vec<f64> = sent.iter().zip(&applied).map(|(s, a)| a.duration_since(*s).as_secs_f64() * 1000.0).collect();
    commands.send(ViewerCommand::Leave).ok();
    Ok(E2eResult {
        width,
        height,
        frames: latencies.len(),
        frame_latency_ms: summarize(&latencies),
        input_latency_ms: summarize(&input),
        frame_samples_ms: latencies,
    })
}

/// The end user taking back control while the technician's input streams in.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawalResult {
    /// Withdrawals measured.
    pub withdrawals: usize,
    /// Input events applied on the end user's machine while control was granted (the 150 ms
    /// before each click), in all: the stream did reach the app.
    pub inputs_applied_before: usize,
    /// Input events applied on the end user's machine after a withdrawal, in all.
    pub inputs_applied_after: usize,
    /// Per withdrawal: from the end user's click to the last input applied after it (0 when
    /// none was), milliseconds.
    pub last_input_after_ms: Option<Summary>,
    /// Per withdrawal: from the end user's click until the relay told the technician's viewer
    /// that control is gone (the relay's chokepoint changes before it says so), milliseconds.
    pub relay_took_control_ms: Option<Summary>,
}

/// Takes control, streams pointer moves every millisecond, and has the end user take back
/// control, `times` times.
pub async fn withdrawal(times: usize) -> anyhow::Result<WithdrawalResult> {
    use deskline_agent::session::AgentCommand;
    let session = SyntheticSession::start(640, 360).await?;
    let me = TechnicianId(1);
    let (commands, mut updates) = session.native_viewer().await?.spawn();
    // Waits for the viewer's report that `done` holds (frames are read and dropped meanwhile).
    let wait = async |updates: &mut tokio::sync::mpsc::Receiver<ViewerUpdate>, done: &dyn Fn(&ViewerUpdate) -> bool| -> anyhow::Result<Instant> {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await? {
                Some(update) if done(&update) => return Ok(Instant::now()),
                Some(ViewerUpdate::Ended(e)) => anyhow::bail!("the viewer ended: {e:?}"),
                Some(_) => {}
                None => anyhow::bail!("the viewer stopped"),
            }
        }
    };
    let (mut applied_before, mut applied_after, mut last_after, mut relay_ms) = (0, 0, Vec::new(), Vec::new());
    for i in 0..times {
        if i > 0 {
            // Control was taken back: ask again (the scripted end user allows).
            crate::api::ask_consent(&session.admin, session.id.0).await?;
            wait(&mut updates, &|u| matches!(u, ViewerUpdate::Allowed(c) if c.control())).await?;
        }
        commands.send(ViewerCommand::TakeControl).ok();
        wait(&mut updates, &|u| matches!(u, ViewerUpdate::Controller(Some(t)) if *t == me)).await?;
        let flood_started = Instant::now();
        let flood_commands = commands.clone();
        let flood = tokio::spawn(async move {
            for n in 0u32.. {
                if flood_commands.send(ViewerCommand::Input(InputEvent::PointerMove { x: n % 640, y: n % 360 })).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let clicked = Instant::now();
        session.end_user.send(AgentCommand::TakeBackControl)?;
        let told = wait(&mut updates, &|u| matches!(u, ViewerUpdate::Controller(None))).await?;
        relay_ms.push(told.duration_since(clicked).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        flood.abort();
        let applied = session.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        applied_before += applied.iter().filter(|t| **t > flood_started && **t <= clicked).count();
        let after: Vec<&Instant> = applied.iter().filter(|t| **t > clicked).collect();
        applied_after += after.len();
        last_after.push(after.last().map_or(0.0, |t| t.duration_since(clicked).as_secs_f64() * 1000.0));
    }
    commands.send(ViewerCommand::Leave).ok();
    Ok(WithdrawalResult {
        withdrawals: times,
        inputs_applied_before: applied_before,
        inputs_applied_after: applied_after,
        last_input_after_ms: summarize(&last_after),
        relay_took_control_ms: summarize(&relay_ms),
    })
}
