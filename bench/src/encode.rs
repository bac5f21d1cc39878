//! Encode benchmark: the app's real convert + encode path (openh264, in each tuning measured:
//! the app's and the others) on reproducible screen-content sets, side by side with ffmpeg's libx264 (`-preset ultrafast
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
    /// Average PSNR (dB) over the frames coded (openh264; skipped ones left out).
    pub psnr_coded_db: Option<f64>,
    /// Frames the encoder's rate control skipped (nothing out; the viewer keeps the previous
    /// picture, which `psnr_db` counts).
    pub skipped: usize,
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
    /// The app's openh264 all-in mean time divided by x264's (ffmpeg reading BGRA and converting
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

/// Average PSNR (dB, Y, U and V together, as ffmpeg's "average") of openh264's access units
/// `encoded` against the BGRA `frames` they came from: as a viewer shows them (a frame the rate
/// control skipped — nothing out — leaves the previous picture on screen), and over the frames
/// coded only. (ffmpeg's psnr filter compares decoded frames in order, so every skip would shift
/// the rest.) The source goes through the same BGRA→I420 conversion the encoder was given.
fn psnr_as_shown(encoded: &[Vec<u8>], frames: &[Vec<u8>], width: usize, height: usize) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    use ::openh264::formats::{BgraSliceU8, YUVBuffer, YUVSource as _};
    let mut decoder = ::openh264::decoder::Decoder::new()?;
    let (cw, ch) = (width / 2, height / 2);
    let mut shown: Option<[Vec<u8>; 3]> = None;
    // (squared error, samples) as shown, and over coded frames.
    let (mut all, mut coded) = ((0f64, 0usize), (0f64, 0usize));
    for (unit, frame) in encoded.iter().zip(frames) {
        let mut fresh = false;
        if !unit.is_empty()
            && let Some(picture) = decoder.decode(unit)?
        {
            let (ys, us, vs) = picture.strides();
            let plane = |data: &[u8], stride: usize, w: usize, h: usize| (0..h).flat_map(|r| data[r * stride..r * stride + w].to_vec()).collect::<Vec<u8>>();
            shown = Some([plane(picture.y(), ys, width, height), plane(picture.u(), us, cw, ch), plane(picture.v(), vs, cw, ch)]);
            fresh = true;
        }
        let Some(planes) = &shown else { continue };
        let source = YUVBuffer::from_bgra8_source(BgraSliceU8::new(frame, (width, height)));
        for (ours, theirs) in planes.iter().zip([source.y(), source.u(), source.v()]) {
            let squared = ours.iter().zip(theirs).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>();
            all = (all.0 + squared, all.1 + ours.len());
            if fresh {
                coded = (coded.0 + squared, coded.1 + ours.len());
            }
        }
    }
    let db = |(squared, samples): (f64, usize)| {
        (samples > 0).then(|| {
            let mse = squared / samples as f64;
            if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0 * 255.0 / mse).log10() }
        })
    };
    Ok((db(all), db(coded)))
}

fn openh264(frames: &[Vec<u8>], width: usize, height: usize, threads: u16, tuning: Tuning, dir: &Path) -> anyhow::Result<EncoderResult> {
    let mut encoder = H264Encoder::with_tuning(width as u32, height as u32, BITRATE_BPS, FPS as f32, threads, tuning)?;
    let mut times = Vec::with_capacity(frames.len());
    let mut bytes = 0usize;
    let mut skipped = 0;
    let mut units = Vec::with_capacity(frames.len());
    let name = if tuning == Tuning::APP { format!("openh264 {} (app)", tuning.name()) } else { format!("openh264 {}", tuning.name()) };
    let path = dir.join(format!("{}-{threads}.h264", name.replace(' ', "-")));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for (i, frame) in frames.iter().enumerate() {
        let started = Instant::now();
        let encoded = encoder.encode_bgra(frame, i == 0, 0)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes += encoded.data.len();
        skipped += usize::from(encoded.data.is_empty());
        file.write_all(&encoded.data)?;
        units.push(encoded.data);
    }
    file.flush()?;
    drop(file);
    let summary = summarize(&times);
    let (shown, coded) = psnr_as_shown(&units, frames, width, height)?;
    Ok(EncoderResult {
        encoder: name,
        threads,
        ms_per_frame: summary,
        all_in_ms_mean: summary.map(|s| s.mean),
        kbps: bytes as f64 * 8.0 * f64::from(FPS) / frames.len() as f64 / 1000.0,
        psnr_db: shown,
        psnr_coded_db: coded,
        skipped,
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
        psnr_coded_db: None,
        skipped: 0,
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
        if threads == 1 {
            // Every tuning measured (issue 18's levers), one thread each.
            for tuning in Tuning::MEASURED {
                results.push(openh264(&frames_data, width, height, threads, tuning, dir.path())?);
            }
        } else {
            results.push(openh264(&frames_data, width, height, threads, Tuning::APP, dir.path())?);
        }
        if have_ffmpeg {
            results.push(x264(frames, width, height, threads, dir.path())?);
        }
    }
    let mean = |name: &str, threads: u16| {
        results.iter().find(|r| r.encoder == name && r.threads == threads).and_then(|r| r.all_in_ms_mean)
    };
    let app = format!("openh264 {} (app)", Tuning::APP.name());
    let ratio_vs_x264 = match (mean(&app, 1), mean("x264", 1)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(SetResult { content, width, height, frames, results, ratio_vs_x264 })
}

/// Real text, for the eye: a document of 13-pixel DejaVu Sans (ImageMagick renders it)
/// scrolling 3 pixels a frame at 1920×1080, encoded by every tuning and by x264 at the same
/// bitrate; the last frame of each, decoded, is cropped to the same 240×75 and tiled, three
/// times enlarged, beside the source's crop into `plots/text-crops.png`.
pub fn text_crops(frames: usize, plots: &Path) -> anyhow::Result<Vec<EncoderResult>> {
    let (width, height) = (1920usize, 1080usize);
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("page.rgba");
    let doc_height = height + frames * 3;
    let mut text = String::new();
    for n in 0..doc_height / 17 {
        text.push_str(&format!(
            "{n:3}  Printer queue: job {} stuck since 09:{:02}; spooler restarted by the technician, driver 6.{}.{} (x64) reinstalled.\n",
            1000 + n * 7,
            n % 60,
            n % 9,
            n * 13 % 100
        ));
    }
    let rendered = Command::new("convert")
        .args(["-size", &format!("{width}x{doc_height}"), "xc:white", "-font", "DejaVu-Sans", "-pointsize", "13", "-fill", "#202020"])
        .args(["-annotate", "+12+16", &text, "-depth", "8"])
        .arg(format!("rgba:{}", page.display()))
        .output()
        .context("ImageMagick's convert")?;
    if !rendered.status.success() {
        bail!("convert failed: {}", String::from_utf8_lossy(&rendered.stderr));
    }
    let rgba = std::fs::read(&page)?;
    // RGBA → BGRA, then one window per frame.
    let bgra: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], 255]).collect();
    let frames_data: Vec<Vec<u8>> = (0..frames).map(|n| bgra[n * 3 * width * 4..(n * 3 + height) * width * 4].to_vec()).collect();
    let mut raw = std::io::BufWriter::new(std::fs::File::create(dir.path().join("frames.raw"))?);
    for f in &frames_data {
        raw.write_all(f)?;
    }
    raw.flush()?;
    drop(raw);
    std::fs::create_dir_all(plots)?;
    let crop = "240x75+8+300";
    let source = dir.path().join("source.png");
    let last = &frames_data[frames - 1];
    std::fs::write(dir.path().join("last.bgra"), last)?;
    let made = Command::new("convert")
        .args(["-size", &format!("{width}x{height}"), "-depth", "8"])
        .arg(format!("bgra:{}", dir.path().join("last.bgra").display()))
        .args(["-crop", crop, "+repage"])
        .arg(&source)
        .status()?;
    if !made.success() {
        bail!("convert could not crop the source");
    }
    let mut results = Vec::new();
    let mut encoded = Vec::new();
    for tuning in Tuning::MEASURED {
        let result = openh264(&frames_data, width, height, 1, tuning, dir.path())?;
        let file = dir.path().join(format!("{}-1.h264", result.encoder.replace(' ', "-")));
        encoded.push((result.encoder.trim_start_matches("openh264 ").to_owned(), file, result));
    }
    if ffmpeg_available() {
        let result = x264(frames, width, height, 1, dir.path())?;
        encoded.push(("x264 ultrafast".into(), dir.path().join("x264-1.h264"), result));
    }
    let mut tiles = vec![("source".to_owned(), source)];
    for (name, file, result) in encoded {
        let png = dir.path().join(format!("text-{}.png", name.replace([' ', '+'], "-")));
        let decoded = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(&file)
            // (Every frame written over the last: the picture is the last one decoded.)
            .args(["-vf", "crop=240:75:8:300", "-update", "1"])
            .arg(&png)
            .status()?;
        if !decoded.success() {
            bail!("ffmpeg could not decode {}", file.display());
        }
        tiles.push((format!("{name}: {:.1} dB, {:.0} kbit/s", result.psnr_db.unwrap_or(0.0), result.kbps), png));
        results.push(EncoderResult { encoder: name, ..result });
    }
    let mut montage = Command::new("montage");
    for (label, png) in &tiles {
        montage.arg("-label").arg(label).arg(png);
    }
    // Three times their size, pixels kept square (no smoothing), two a row.
    let stacked = montage
        .args(["-tile", "2x", "-filter", "Point", "-geometry", "720x225+6+6", "-font", "DejaVu-Sans", "-pointsize", "16"])
        .arg(plots.join("text-crops.png"))
        .status()?;
    if !stacked.success() {
        bail!("montage failed");
    }
    Ok(results)
}
