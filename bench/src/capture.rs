//! Capture benchmark: scrap (what the support app uses) against ffmpeg's x11grab on the same
//! Xvfb display, per frame, with the X server's own CPU time counted for both (on X11 the
//! server does the copying, so the app's time alone would flatter both).

use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use serde::Serialize;
use crate::procs::Xvfb;
use std::process::Command;
use std::time::Instant;

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
    let before = xvfb.cpu_seconds()? * 1000.0;
    let out = Command::new(std::env::current_exe()?)
        .args(["capture-probe", "--frames", &frames.to_string()])
        .env("DISPLAY", &xvfb.display)
        .output()?;
    if !out.status.success() {
        bail!("capture probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let scrap_xserver_ms = ((xvfb.cpu_seconds()? * 1000.0) - before) / frames as f64;
    let times: Vec<f64> = serde_json::from_slice(&out.stdout)?;
    // The first call only starts the first request.
    let scrap_ms = summarize(times.get(1..).unwrap_or_default());

    let before = xvfb.cpu_seconds()? * 1000.0;
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
            (rtime.map(|s| s * 1000.0 / frames as f64), Some(((xvfb.cpu_seconds()? * 1000.0) - before) / frames as f64))
        }
        _ => (None, None),
    };
    Ok(CaptureResult { width, height, frames, scrap_ms, scrap_xserver_ms, ffmpeg_ms, ffmpeg_xserver_ms })
}
