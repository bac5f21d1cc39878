//! The real support app on a real display: the `deskline-agent` binary on Xvfb, an
//! in-process relay (real QUIC and TLS) and an in-process viewer decoding.
//!
//! - [`screen_latency`]: capture → decoded at 1080p with the real capture path (MIT-SHM grab,
//!   damage, cursor, BGRA → I420, openh264) while a 60 fps test pattern plays in a window
//!   (ffplay), at the frame rate the relay asks for (30 or 60).
//! - [`idle`]: the app's CPU use on an unchanged screen, connected and sharing, against what
//!   a capture-everything pipeline costs on the same screen (ffmpeg x11grab + libx264).

use crate::procs::{Reaped, Xvfb, cpu_seconds, sibling_binary};
use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use deskline_console::client::Client;
use deskline_console::viewer::{self, RelayTarget, ViewerCommand, ViewerUpdate};
use deskline_protocol::{SessionId, TechnicianId};
use deskline_relay::server::LocalRelay;
use serde::Serialize;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Capture → decoded with the real capture.
#[derive(Debug, Clone, Serialize)]
pub struct ScreenLatency {
    /// Display size.
    pub width: usize,
    /// Display size.
    pub height: usize,
    /// The frame rate the relay asked for.
    pub fps_asked: u16,
    /// Frames per second that reached the viewer.
    pub fps_received: f64,
    /// Frames measured.
    pub frames: usize,
    /// Capture → decoded, milliseconds.
    pub latency_ms: Option<Summary>,
    /// The app's CPU use while streaming, percent of one core.
    pub app_cpu_percent: f64,
    /// The X server's CPU use meanwhile (capture copies happen there), percent of one core.
    pub xserver_cpu_percent: f64,
    /// Every sample (for plots).
    #[serde(skip)]
    pub samples_ms: Vec<f64>,
}

/// CPU use on an unchanged screen.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    /// What was measured.
    pub state: String,
    /// Seconds measured.
    pub seconds: f64,
    /// The measured process, percent of one core.
    pub cpu_percent: f64,
    /// The X server, percent of one core.
    pub xserver_cpu_percent: f64,
}

/// A relay, a session, the real app on a fresh Xvfb, consent granted.
struct Sharing {
    _dir: tempfile::TempDir,
    _relay: LocalRelay,
    xvfb: Xvfb,
    agent: Reaped,
    target: RelayTarget,
    token: String,
    session: SessionId,
}

impl Sharing {
    async fn start(width: usize, height: usize, max_fps: u16) -> anyhow::Result<Sharing> {
        let agent_binary = sibling_binary("deskline-agent", "deskline-agent")?;
        let xvfb = Xvfb::start(width, height)?;
        let dir = tempfile::tempdir()?;
        let mut options = LocalRelay::options(dir.path().join("relay"), "Bench");
        options.max_fps = max_fps;
        let relay = LocalRelay::start_with(&options)?;
        let anonymous = Client::new(&relay.base_url, Some(&relay.fingerprint), None)?;
        let login = anonymous.post("/login", &json!({"username": "admin", "password": relay.admin_password})).await?;
        let token = login["token"].as_str().context("token")?.to_owned();
        let admin = Client::new(&relay.base_url, Some(&relay.fingerprint), Some(token.clone()))?;
        let session = admin.post("/channels/1/sessions", &json!({"kind": "pin"})).await?;
        let id = session["id"].as_i64().context("id")?;
        let agent = Command::new(agent_binary)
            .args(["--pin", session["pin"].as_str().context("pin")?, "--relay", &relay.quic.to_string()])
            .args(["--fingerprint", &relay.fingerprint, "--auto-consent", "allow"])
            .env("DISPLAY", &xvfb.display)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting deskline-agent")?;
        let agent = Reaped(agent);
        wait_until(&admin, id, |v| v["state"] == "active").await.context("the app did not connect")?;
        admin.post(&format!("/sessions/{id}/remote"), &json!({})).await?;
        wait_until(&admin, id, |v| v["consent"]["status"] == "granted").await.context("consent was not granted")?;
        let target = RelayTarget { quic: relay.quic, server_name: "localhost".into(), fingerprint: deskline_net::tls::parse_fingerprint(&relay.fingerprint)? };
        Ok(Sharing { _dir: dir, _relay: relay, xvfb, agent, target, token, session: SessionId(id) })
    }

    async fn viewer(&self) -> anyhow::Result<(mpsc::UnboundedSender<ViewerCommand>, mpsc::Receiver<ViewerUpdate>)> {
        Ok(viewer::join(&self.target, &self.token, self.session, TechnicianId(1)).await?.spawn())
    }

    /// CPU seconds of the app and of the X server over `seconds`.
    async fn cpu_over(&self, seconds: f64) -> anyhow::Result<(f64, f64)> {
        let (app, x) = (cpu_seconds(self.agent.0.id())?, self.xvfb.cpu_seconds()?);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok((cpu_seconds(self.agent.0.id())? - app, self.xvfb.cpu_seconds()? - x))
    }
}

async fn wait_until(admin: &Client, id: i64, check: impl Fn(&serde_json::Value) -> bool) -> anyhow::Result<()> {
    for _ in 0..200 {
        if check(&admin.get(&format!("/sessions/{id}")).await?) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out")
}

fn percent(cpu_s: f64, seconds: f64) -> f64 {
    cpu_s / seconds * 100.0
}

/// Capture → decoded at `width` × `height` with the relay asking for `fps`, while a test
/// pattern plays at 60 fps in a 640×360 window.
pub async fn screen_latency(width: usize, height: usize, fps: u16, frames: usize) -> anyhow::Result<ScreenLatency> {
    let sharing = Sharing::start(width, height, fps).await?;
    let _player = Reaped(
        Command::new("ffplay")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=60"])
            .args(["-noborder", "-left", "200", "-top", "200"])
            .env("DISPLAY", &sharing.xvfb.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ffplay (apt-get install ffmpeg)")?,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (commands, mut updates) = sharing.viewer().await?;
    let next_frame = async |updates: &mut mpsc::Receiver<ViewerUpdate>| loop {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await {
            Ok(Some(ViewerUpdate::Frame(frame))) => return Ok(frame),
            Ok(Some(ViewerUpdate::Controller(_) | ViewerUpdate::Displays(_) | ViewerUpdate::Allowed(_))) => {}
            Ok(Some(ViewerUpdate::Ended(e))) => bail!("the viewer ended: {e:?}"),
            Ok(None) => bail!("the viewer stopped"),
            Err(_) => bail!("no frame for 20 s"),
        }
    };
    // Warm-up: a second of frames (decoder, caches, the rate controller's first report).
    for _ in 0..usize::from(fps) {
        next_frame(&mut updates).await?;
    }
    let (app_before, x_before) = (cpu_seconds(sharing.agent.0.id())?, sharing.xvfb.cpu_seconds()?);
    let started = Instant::now();
    let mut samples = Vec::with_capacity(frames);
    while samples.len() < frames {
        samples.push(next_frame(&mut updates).await?.latency_us as f64 / 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let app = cpu_seconds(sharing.agent.0.id())? - app_before;
    let x = sharing.xvfb.cpu_seconds()? - x_before;
    commands.send(ViewerCommand::Leave).ok();
    Ok(ScreenLatency {
        width,
        height,
        fps_asked: fps,
        fps_received: frames as f64 / elapsed,
        frames,
        latency_ms: summarize(&samples),
        app_cpu_percent: percent(app, elapsed),
        xserver_cpu_percent: percent(x, elapsed),
        samples_ms: samples,
    })
}

/// The app's CPU on an unchanged 1080p screen: connected but not sharing, then sharing with a
/// viewer watching; and ffmpeg x11grab + libx264 (ultrafast, zerolatency, 30 fps) on the same
/// screen for comparison. `seconds` per state.
pub async fn idle(seconds: f64) -> anyhow::Result<Vec<IdleResult>> {
    let sharing = Sharing::start(1920, 1080, 30).await?;
    let mut results = Vec::new();
    let mut record = |state: &str, (cpu, x): (f64, f64)| {
        results.push(IdleResult {
            state: state.to_owned(),
            seconds,
            cpu_percent: percent(cpu, seconds),
            xserver_cpu_percent: percent(x, seconds),
        });
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    record("deskline-agent, connected, no viewer", sharing.cpu_over(seconds).await?);

    let (commands, mut updates) = sharing.viewer().await?;
    let drain = tokio::spawn(async move { while updates.recv().await.is_some() {} });
    tokio::time::sleep(Duration::from_secs(2)).await;
    record("deskline-agent, sharing, unchanged screen", sharing.cpu_over(seconds).await?);
    commands.send(ViewerCommand::Leave).ok();
    drain.abort();

    let ffmpeg = Reaped(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "x11grab", "-framerate", "30", "-video_size", "1920x1080"])
            .args(["-i", &sharing.xvfb.display, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
            .args(["-b:v", "4M", "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ffmpeg")?,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, x) = (cpu_seconds(ffmpeg.0.id())?, sharing.xvfb.cpu_seconds()?);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    record(
        "reference: ffmpeg x11grab + libx264, 30 fps",
        (cpu_seconds(ffmpeg.0.id())? - cpu, sharing.xvfb.cpu_seconds()? - x),
    );
    Ok(results)
}
