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
use deskline_console::viewer::{self, RelayTarget, ViewerCommand, ViewerUpdate};
use deskline_protocol::{SessionId, TechnicianId};
use deskline_relay::server::LocalRelay;
use serde::Serialize;
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
pub(crate) struct Sharing {
    _dir: tempfile::TempDir,
    _relay: LocalRelay,
    xvfb: Xvfb,
    agent: Reaped,
    target: RelayTarget,
    token: String,
    session: SessionId,
}

/// Which support app to run.
pub enum App {
    /// The Linux build next to this binary.
    Linux,
    /// The Windows build under Wine, in its own prefix (created by the caller).
    Windows {
        /// The .exe.
        exe: std::path::PathBuf,
        /// `WINEPREFIX`.
        prefix: std::path::PathBuf,
    },
}

impl Sharing {
    /// As [`Sharing::start`], with the display's name (for the glass-to-glass clock).
    pub(crate) async fn start_for_glass(width: usize, height: usize, max_fps: u16) -> anyhow::Result<(Sharing, String)> {
        let sharing = Sharing::start(width, height, max_fps).await?;
        let display = sharing.xvfb.display.clone();
        Ok((sharing, display))
    }

    /// Stops the app and the relay, keeping the display.
    pub(crate) fn into_xvfb(self) -> Xvfb {
        self.xvfb
    }

    async fn start(width: usize, height: usize, max_fps: u16) -> anyhow::Result<Sharing> {
        Sharing::start_app(&App::Linux, Xvfb::start(width, height)?, max_fps).await.map(|(s, _)| s)
    }

    /// Starts `app` on `xvfb` and waits until it has registered (the time it took) and
    /// consent is granted.
    async fn start_app(app: &App, xvfb: Xvfb, max_fps: u16) -> anyhow::Result<(Sharing, Duration)> {
        let dir = tempfile::tempdir()?;
        let mut options = LocalRelay::options(dir.path().join("relay"), "Bench");
        options.max_fps = max_fps;
        let relay = LocalRelay::start_with(&options)?;
        let crate::api::SignedIn { client: admin, token, .. } =
            crate::api::sign_in(&relay.base_url, &relay.fingerprint, "admin", &relay.admin_password).await?;
        let session = crate::api::pin_session(&admin).await?;
        let id = session.id;
        let mut command = match app {
            App::Linux => Command::new(sibling_binary("deskline-agent", "deskline-agent")?),
            App::Windows { exe, prefix } => {
                let mut wine = Command::new("wine");
                wine.arg(exe).env("WINEPREFIX", prefix).env("WINEDLLOVERRIDES", "mscoree,mshtml=").env("WINEDEBUG", "-all");
                wine
            }
        };
        let started = Instant::now();
        let agent = command
            .args(["--pin", session.pin.as_deref().context("pin")?, "--relay", &relay.quic.to_string()])
            .args(["--fingerprint", &relay.fingerprint, "--auto-consent", "allow"])
            .env("DISPLAY", &xvfb.display)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting deskline-agent")?;
        let agent = Reaped(agent);
        wait_until(&admin, id, |s| s.state == "active" && s.agent.is_some()).await.context("the app did not connect")?;
        let registered = started.elapsed();
        crate::api::ask_consent(&admin, id).await?;
        wait_until(&admin, id, |s| s.consent.status == "granted").await.context("consent was not granted")?;
        let target = RelayTarget { quic: relay.quic, server_name: "localhost".into(), fingerprint: deskline_net::tls::parse_fingerprint(&relay.fingerprint)? };
        Ok((Sharing { _dir: dir, _relay: relay, xvfb, agent, target, token, session: SessionId(id) }, registered))
    }

    pub(crate) async fn viewer(&self) -> anyhow::Result<(mpsc::UnboundedSender<ViewerCommand>, mpsc::Receiver<ViewerUpdate>)> {
        Ok(viewer::join(&self.target, &self.token, self.session, TechnicianId(1)).await?.spawn())
    }

    /// CPU seconds of the app and of the X server over `seconds`.
    async fn cpu_over(&self, seconds: f64) -> anyhow::Result<(f64, f64)> {
        let (app, x) = (cpu_seconds(self.agent.0.id())?, self.xvfb.cpu_seconds()?);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Ok((cpu_seconds(self.agent.0.id())? - app, self.xvfb.cpu_seconds()? - x))
    }
}

async fn wait_until(admin: &deskline_console::client::Client, id: i64, check: impl Fn(&deskline_api::SessionView) -> bool) -> anyhow::Result<()> {
    if !crate::api::wait_until(admin, id, 200, Duration::from_millis(50), check).await? {
        bail!("timed out");
    }
    Ok(())
}

/// ffplay showing a moving test pattern of `size` at `fps` in a borderless window at `at` on
/// `display`, stopped when dropped.
fn play_pattern(display: &str, size: &str, fps: u32, at: (u32, u32)) -> anyhow::Result<Reaped> {
    Ok(Reaped(
        Command::new("ffplay")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", &format!("testsrc=size={size}:rate={fps}")])
            .args(["-noborder", "-left", &at.0.to_string(), "-top", &at.1.to_string()])
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ffplay (apt-get install ffmpeg)")?,
    ))
}

fn percent(cpu_s: f64, seconds: f64) -> f64 {
    cpu_s / seconds * 100.0
}

/// Capture → decoded at `width` × `height` with the relay asking for `fps`, while a test
/// pattern plays at 60 fps in a 640×360 window.
pub async fn screen_latency(width: usize, height: usize, fps: u16, frames: usize) -> anyhow::Result<ScreenLatency> {
    let sharing = Sharing::start(width, height, fps).await?;
    let _player = play_pattern(&sharing.xvfb.display, "640x360", 60, (200, 200))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (commands, mut updates) = sharing.viewer().await?;
    let next_frame = async |updates: &mut mpsc::Receiver<ViewerUpdate>| loop {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await {
            Ok(Some(ViewerUpdate::Frame(frame))) => return Ok(frame),
            Ok(Some(ViewerUpdate::Ended(e))) => bail!("the viewer ended: {e:?}"),
            Ok(Some(_)) => {}
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

/// One support app's cost on this machine: its file, its start, its CPU per state.
#[derive(Debug, Clone, Serialize)]
pub struct AppCost {
    /// Which build, and how it ran.
    pub app: String,
    /// The executable's size in bytes.
    pub exe_bytes: u64,
    /// Process start → registered with the relay (the end user sees "waiting"), milliseconds.
    pub start_to_waiting_ms: f64,
    /// Under Wine: how long the prefix's first Wine process took (Wine's own start-up, paid
    /// once per login; not part of the app's start), milliseconds.
    pub first_wine_start_ms: Option<f64>,
    /// CPU per state.
    pub states: Vec<IdleResult>,
}

/// A Wine prefix for the Windows app, with the test-only `ProcessPrng` shim beside a copy of
/// the .exe (Debian 12's Wine 8 lacks it; see agent/tests/wine/process_prng.c).
fn wine_app(exe: &std::path::Path, dir: &std::path::Path, display: &str) -> anyhow::Result<App> {
    let prefix = dir.join("prefix");
    let status = Command::new("wineboot")
        .arg("--init")
        .env("DISPLAY", display)
        .env("WINEPREFIX", &prefix)
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env("WINEDEBUG", "-all")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("wineboot (apt-get install wine)")?;
    if !status.success() {
        bail!("wineboot failed");
    }
    let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/tests/wine/process_prng.c");
    let out = Command::new("x86_64-w64-mingw32-gcc-posix")
        .args(["-O2", "-shared", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .args([shim, "-ladvapi32"])
        .output()
        .context("mingw-w64")?;
    if !out.status.success() {
        bail!("building the ProcessPrng shim: {}", String::from_utf8_lossy(&out.stderr));
    }
    let copy = dir.join("deskline-agent.exe");
    std::fs::copy(exe, &copy)?;
    Ok(App::Windows { exe: copy, prefix })
}

/// Keeps the prefix's wineserver running and starts Wine once (`deskline-agent.exe --version`,
/// which exits at once): how long the first Wine process takes, in milliseconds. The app's
/// own start is measured after it, with Wine warm, as a Windows machine always is.
fn warm_wine(exe: &std::path::Path, prefix: &std::path::Path, display: &str) -> anyhow::Result<f64> {
    let _ = Command::new("wineserver").arg("-p").env("WINEPREFIX", prefix).status();
    let started = Instant::now();
    Command::new("wine")
        .arg(exe)
        .arg("--version")
        .env("WINEPREFIX", prefix)
        .env("DISPLAY", display)
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env("WINEDEBUG", "-all")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("wine")?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The Windows support app (`exe`) under Wine next to the Linux one, each on its own 1920×1080
/// Xvfb with a relay: start → registered, then CPU connected, sharing an unchanged screen, and
/// sharing while a 30 fps test pattern fills the screen (ffplay). `seconds` per state.
pub async fn windows_vs_linux(exe: &std::path::Path, seconds: f64) -> anyhow::Result<Vec<AppCost>> {
    let mut costs = Vec::new();
    for windows in [false, true] {
        let dir = tempfile::tempdir()?;
        let xvfb = Xvfb::start(1920, 1080)?;
        let mut first_wine_start_ms = None;
        let (app, name, exe_bytes) = if windows {
            let app = wine_app(exe, dir.path(), &xvfb.display)?;
            if let App::Windows { exe, prefix } = &app {
                first_wine_start_ms = Some(warm_wine(exe, prefix, &xvfb.display)?);
            }
            (app, "deskline-agent.exe under Wine 8", std::fs::metadata(exe)?.len())
        } else {
            let linux = sibling_binary("deskline-agent", "deskline-agent")?;
            (App::Linux, "deskline-agent on Linux (X11)", std::fs::metadata(linux)?.len())
        };
        let (sharing, registered) = Sharing::start_app(&app, xvfb, 30).await?;
        let mut states = Vec::new();
        let mut record = |state: &str, (cpu, x): (f64, f64)| {
            states.push(IdleResult { state: state.to_owned(), seconds, cpu_percent: percent(cpu, seconds), xserver_cpu_percent: percent(x, seconds) });
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        record("connected, no viewer", sharing.cpu_over(seconds).await?);
        let (commands, mut updates) = sharing.viewer().await?;
        let drain = tokio::spawn(async move { while updates.recv().await.is_some() {} });
        tokio::time::sleep(Duration::from_secs(2)).await;
        record("sharing, unchanged screen", sharing.cpu_over(seconds).await?);
        let player = play_pattern(&sharing.xvfb.display, "1920x1080", 30, (0, 0))?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        record("sharing, 30 fps test pattern filling the screen", sharing.cpu_over(seconds).await?);
        drop(player);
        commands.send(ViewerCommand::Leave).ok();
        drain.abort();
        costs.push(AppCost {
            app: name.to_owned(),
            exe_bytes,
            start_to_waiting_ms: registered.as_secs_f64() * 1000.0,
            first_wine_start_ms,
            states,
        });
        if windows {
            let _ = Command::new("wineserver").arg("-k").env("WINEPREFIX", dir.path().join("prefix")).status();
        }
    }
    Ok(costs)
}
