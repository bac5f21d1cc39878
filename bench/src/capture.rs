//! Capture benchmark: scrap (what the support app uses) against ffmpeg's x11grab on the same
//! Xvfb display, per frame, with the X server's own CPU time counted for both (on X11 the
//! server does the copying, so the app's time alone would flatter both).

use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One display size.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureResult {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Frames captured by each.
    pub frames: usize,
    /// scrap: milliseconds per captured frame in the capturing process.
    pub scrap_ms: Option<Summary>,
    /// scrap: X server CPU milliseconds per frame.
    pub scrap_xserver_ms: f64,
    /// ffmpeg x11grab: mean wall milliseconds per frame.
    pub ffmpeg_ms: Option<f64>,
    /// ffmpeg x11grab: X server CPU milliseconds per frame.
    pub ffmpeg_xserver_ms: Option<f64>,
}

struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Xvfb {
    fn start(width: usize, height: usize) -> anyhow::Result<Xvfb> {
        let n = (150..250).find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists()).context("no free display number")?;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", &format!("{width}x{height}x24"), "-noreset", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb")?;
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            if Instant::now() > deadline {
                bail!("Xvfb did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("xsetroot").args(["-solid", "#3366cc"]).env("DISPLAY", &display).status();
        Ok(Xvfb { child, display })
    }

    fn cpu_ms(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
        Ok(ticks * 10.0)
    }
}

/// Runs in a child process with `DISPLAY` set (scrap connects to `$DISPLAY`): captures
/// `frames` frames and prints the per-frame milliseconds as JSON.
pub fn probe(frames: usize) -> anyhow::Result<()> {
    let display = scrap::Display::primary().context("no display")?;
    let mut capturer = scrap::Capturer::new(display)?;
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let started = Instant::now();
        let frame = capturer.frame()?;
        std::hint::black_box(frame.len());
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{}", serde_json::to_string(&times)?);
    Ok(())
}

/// Measures one display size.
pub fn run(width: usize, height: usize, frames: usize) -> anyhow::Result<CaptureResult> {
    let xvfb = Xvfb::start(width, height)?;
    let before = xvfb.cpu_ms()?;
    let out = Command::new(std::env::current_exe()?)
        .args(["capture-probe", "--frames", &frames.to_string()])
        .env("DISPLAY", &xvfb.display)
        .output()?;
    if !out.status.success() {
        bail!("capture probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let scrap_xserver_ms = (xvfb.cpu_ms()? - before) / frames as f64;
    let times: Vec<f64> = serde_json::from_slice(&out.stdout)?;
    // The first call only starts the first request.
    let scrap_ms = summarize(times.get(1..).unwrap_or_default());

    let before = xvfb.cpu_ms()?;
    let grab = Command::new("ffmpeg")
        .args(["-hide_banner", "-benchmark", "-f", "x11grab", "-framerate", "1000", "-video_size", &format!("{width}x{height}")])
        .args(["-i", &xvfb.display, "-frames:v", &frames.to_string(), "-f", "null", "-"])
        .output();
    let (ffmpeg_ms, ffmpeg_xserver_ms) = match grab {
        Ok(o) if o.status.success() => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let rtime = stderr
                .lines()
                .find_map(|l| l.split("rtime=").nth(1))
                .and_then(|v| v.trim().trim_end_matches('s').parse::<f64>().ok());
            (rtime.map(|s| s * 1000.0 / frames as f64), Some((xvfb.cpu_ms()? - before) / frames as f64))
        }
        _ => (None, None),
    };
    Ok(CaptureResult { width, height, frames, scrap_ms, scrap_xserver_ms, ffmpeg_ms, ffmpeg_xserver_ms })
}
