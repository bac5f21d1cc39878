//! Encode benchmark: the app's real convert + encode path (openh264, screen-content mode) on
//! reproducible screen-content sets, side by side with ffmpeg's libx264 (`-preset ultrafast
//! -tune zerolatency`) on the identical frames, in the same run.

use crate::content::{Content, Generator};
use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use deskline_agent::H264Encoder;
use deskline_agent::encode::Tuning;
use serde::Serialize;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Bitrate both encoders aim for: crisp 1080p screen content.
pub const BITRATE_BPS: u32 = 4_000_000;
/// Frame rate both encoders are told.
pub const FPS: u32 = 30;

/// One encoder on one set.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderResult {
    /// `openh264` or `x264`.
    pub encoder: String,
    /// Threads used.
    pub threads: u16,
    /// Milliseconds per frame of the encoder itself (openh264: BGRA→I420 conversion
    /// included; x264: excluded, ffmpeg converts in a separate step).
    pub ms_per_frame: Option<Summary>,
    /// Mean milliseconds per frame for the whole path from BGRA frames to H.264, conversion
    /// included: the number to compare.
    pub all_in_ms_mean: Option<f64>,
    /// Resulting bitrate in kbit/s at [`FPS`].
    pub kbps: f64,
    /// Average PSNR (dB) of the decoded stream against the source (ffmpeg's psnr filter).
    pub psnr_db: Option<f64>,
}

/// One set at one size.
#[derive(Debug, Clone, Serialize)]
pub struct SetResult {
    /// The content.
    pub content: Content,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Frames encoded.
    pub frames: usize,
    /// Each encoder's result.
    pub results: Vec<EncoderResult>,
    /// openh264's all-in mean time divided by x264's (ffmpeg reading BGRA and converting
    /// included), one thread each (below 1: we are faster).
    pub ratio_vs_x264: Option<f64>,
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success())
}

/// Average PSNR of an H.264 file against the raw BGRA frames.
fn psnr(encoded: &Path, raw: &Path, width: usize, height: usize) -> Option<f64> {
    let size = format!("{width}x{height}");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-r", "30", "-i"])
        .arg(encoded)
        .args(["-f", "rawvideo", "-pix_fmt", "bgra", "-s", &size, "-r", "30", "-i"])
        .arg(raw)
        .args(["-lavfi", "[0:v]format=yuv420p[a];[1:v]format=yuv420p[b];[a][b]psnr", "-f", "null", "-"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().rev().find(|l| l.contains("PSNR"))?;
    let average = line.split("average:").nth(1)?.split_whitespace().next()?;
    if average == "inf" { Some(f64::INFINITY) } else { average.parse().ok() }
}

fn openh264(frames: &[Vec<u8>], width: usize, height: usize, threads: u16, tuning: Tuning, dir: &Path) -> anyhow::Result<EncoderResult> {
    let mut encoder = H264Encoder::with_tuning(width as u32, height as u32, BITRATE_BPS, FPS as f32, threads, tuning)?;
    let mut times = Vec::with_capacity(frames.len());
    let mut bytes = 0usize;
    let name = match tuning {
        Tuning::Screen => "openh264",
        Tuning::Camera => "openh264 camera mode",
    };
    let path = dir.join(format!("{}-{threads}.h264", name.replace(' ', "-")));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for (i, frame) in frames.iter().enumerate() {
        let started = Instant::now();
        let encoded = encoder.encode_bgra(frame, i == 0, 0)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes += encoded.data.len();
        file.write_all(&encoded.data)?;
    }
    file.flush()?;
    drop(file);
    let raw = dir.join("frames.raw");
    let summary = summarize(&times);
    Ok(EncoderResult {
        encoder: name.into(),
        threads,
        ms_per_frame: summary,
        all_in_ms_mean: summary.map(|s| s.mean),
        kbps: bytes as f64 * 8.0 * f64::from(FPS) / frames.len() as f64 / 1000.0,
        psnr_db: psnr(&path, &raw, width, height),
    })
}

fn x264(frames: usize, width: usize, height: usize, threads: u16, dir: &Path) -> anyhow::Result<EncoderResult> {
    let raw = dir.join("frames.raw");
    let path = dir.join(format!("x264-{threads}.h264"));
    let size = format!("{width}x{height}");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-benchmark_all", "-benchmark", "-f", "rawvideo", "-pix_fmt", "bgra", "-s", &size, "-r", "30", "-i"])
        .arg(&raw)
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", &threads.to_string()])
        .args(["-b:v", &BITRATE_BPS.to_string(), "-pix_fmt", "yuv420p", "-f", "h264", "-y"])
        .arg(&path)
        .output()
        .context("running ffmpeg")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default());
    }
    // `-benchmark_all` prints a line per encoder call, "bench: U user S sys R real encode_video"
    // (microseconds); ffmpeg makes two calls per frame (send the frame, take the packet), so
    // consecutive pairs add up to one frame. The BGRA→I420 conversion is a separate filter step
    // in ffmpeg and is not in these; `-benchmark`'s total ("rtime=…s") includes it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls: Vec<f64> = stderr
        .lines()
        .filter(|l| l.contains("encode_video"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let real = words.iter().position(|w| *w == "real")?;
            words.get(real - 1)?.parse::<f64>().ok().map(|us| us / 1000.0)
        })
        .collect();
    let times: Vec<f64> =
        if calls.len() == 2 * frames { calls.chunks(2).map(|p| p.iter().sum()).collect() } else { calls };
    let all_in_ms_mean = stderr
        .lines()
        .find_map(|l| l.split("rtime=").nth(1))
        .and_then(|v| v.trim().trim_end_matches('s').parse::<f64>().ok())
        .map(|secs| secs * 1000.0 / frames as f64);
    let bytes = std::fs::metadata(&path)?.len();
    Ok(EncoderResult {
        encoder: "x264".into(),
        threads,
        all_in_ms_mean,
        ms_per_frame: summarize(&times[..times.len().min(frames)]),
        kbps: bytes as f64 * 8.0 * f64::from(FPS) / frames as f64 / 1000.0,
        psnr_db: psnr(&path, &raw, width, height),
    })
}

/// Runs one set at one size with one and two threads.
pub fn run_set(content: Content, width: usize, height: usize, frames: usize) -> anyhow::Result<SetResult> {
    let dir = tempfile::tempdir()?;
    let mut generator = Generator::new(content, width, height);
    let frames_data: Vec<Vec<u8>> = (0..frames).map(|_| generator.next_frame()).collect();
    let mut raw = std::io::BufWriter::new(std::fs::File::create(dir.path().join("frames.raw"))?);
    for f in &frames_data {
        raw.write_all(f)?;
    }
    raw.flush()?;
    drop(raw);
    let mut results = Vec::new();
    let have_ffmpeg = ffmpeg_available();
    for threads in [1u16, 2] {
        results.push(openh264(&frames_data, width, height, threads, Tuning::Screen, dir.path())?);
        if threads == 1 {
            // The app uses screen-content mode; camera mode beside it, as measured evidence.
            results.push(openh264(&frames_data, width, height, threads, Tuning::Camera, dir.path())?);
        }
        if have_ffmpeg {
            results.push(x264(frames, width, height, threads, dir.path())?);
        }
    }
    let mean = |name: &str, threads: u16| {
        results.iter().find(|r| r.encoder == name && r.threads == threads).and_then(|r| r.all_in_ms_mean)
    };
    let ratio_vs_x264 = match (mean("openh264", 1), mean("x264", 1)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(SetResult { content, width, height, frames, results, ratio_vs_x264 })
}
