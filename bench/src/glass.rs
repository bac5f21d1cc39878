//! Glass to glass: from the moment a picture is on the screen to the moment a viewer has it
//! decoded, for Deskline and for a pipeline a user could build instead, on the same screen in
//! the same run.
//!
//! A clock strip ([`clock_window`], run as `deskline-bench clock-window`) draws the wall clock's
//! milliseconds into its pixels, 32 bits as black or white 16×16 blocks, redrawn every
//! millisecond in one `PutImage` request (the X server never shows half of one). A viewer
//! reads the blocks back from each decoded frame; now − the time drawn is the glass-to-glass
//! latency (to within the 1 ms the strip is redrawn at). Deskline: the real app on Xvfb
//! through an in-process relay to the in-process viewer. Reference: ffmpeg x11grab → libx264
//! ultrafast/zerolatency → MPEG-TS over UDP on loopback → ffmpeg decoding to RGB on a pipe.

use crate::procs::{Reaped, Xvfb};
use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bits drawn, each a block of [`BLOCK`] pixels square, in one row at the screen's top left.
const BITS: usize = 32;
const BLOCK: usize = 16;

fn now_ms() -> u32 {
    // The low 32 bits of the Unix time in milliseconds (wraps every 49 days; differences are
    // taken wrapping).
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u32)
}

/// Draws the clock strip on `display` until killed.
pub fn clock_window(display: &str) -> anyhow::Result<()> {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass};
    let (conn, screen_num) = x11rb::connect(Some(display)).context("connecting to the X display")?;
    let screen = &conn.setup().roots[screen_num];
    let (width, height) = ((BITS * BLOCK) as u16, BLOCK as u16);
    let window = conn.generate_id()?;
    let aux = CreateWindowAux::new().background_pixel(screen.white_pixel).override_redirect(1);
    conn.create_window(screen.root_depth, window, screen.root, 0, 0, width, height, 0, WindowClass::INPUT_OUTPUT, 0, &aux)?;
    conn.map_window(window)?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, window, &CreateGCAux::new())?;
    conn.flush()?;
    let mut image = vec![0u8; usize::from(width) * usize::from(height) * 4];
    loop {
        let now = now_ms();
        for bit in 0..BITS {
            let value = if now >> (BITS - 1 - bit) & 1 == 1 { 0 } else { 255 };
            for y in 0..BLOCK {
                let row = (y * usize::from(width) + bit * BLOCK) * 4;
                image[row..row + BLOCK * 4].fill(value);
            }
        }
        conn.put_image(ImageFormat::Z_PIXMAP, window, gc, width, height, 0, 0, 0, screen.root_depth, &image)?;
        conn.flush()?;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The time drawn in an RGB frame (`width` pixels a row), if the strip reads clearly: every
/// block's centre nearly black or nearly white.
fn read_clock(rgb: &[u8], width: usize) -> Option<u32> {
    let mut value = 0u32;
    for bit in 0..BITS {
        let (x, y) = (bit * BLOCK + BLOCK / 2, BLOCK / 2);
        let i = (y * width + x) * 3;
        let luma = (u32::from(*rgb.get(i)?) + u32::from(rgb[i + 1]) + u32::from(rgb[i + 2])) / 3;
        let one = match luma {
            0..=70 => 1,
            185.. => 0,
            _ => return None,
        };
        value = value << 1 | one;
    }
    Some(value)
}

/// One pipeline's glass-to-glass latency.
#[derive(Debug, Clone, Serialize)]
pub struct GlassResult {
    /// Which pipeline.
    pub pipeline: String,
    /// Frames read.
    pub frames: usize,
    /// Frames whose strip could not be read (never expected; counted to be sure).
    pub unreadable: usize,
    /// Frames per second received.
    pub fps_received: f64,
    /// Screen → decoded, milliseconds.
    pub latency_ms: Option<Summary>,
}

/// Frames read so far: the first second is warm-up, then each frame's clock is read.
#[derive(Default)]
struct Tally {
    seen: usize,
    samples: Vec<f64>,
    unreadable: usize,
    started: Option<Instant>,
}

impl Tally {
    /// Counts a frame decoded at `now` (ms), `width` pixels a row.
    fn frame(&mut self, rgb: &[u8], width: usize, now: u32) {
        self.seen += 1;
        if self.seen <= 30 {
            return;
        }
        self.started.get_or_insert_with(Instant::now);
        match read_clock(rgb, width) {
            Some(drawn) => self.samples.push(f64::from(now.wrapping_sub(drawn))),
            None => self.unreadable += 1,
        }
    }

    fn counted(&self) -> usize {
        self.samples.len() + self.unreadable
    }

    fn result(&self, pipeline: &str) -> GlassResult {
        let elapsed = self.started.map_or(1.0, |s| s.elapsed().as_secs_f64());
        GlassResult {
            pipeline: pipeline.into(),
            frames: self.samples.len(),
            unreadable: self.unreadable,
            fps_received: self.counted() as f64 / elapsed,
            latency_ms: summarize(&self.samples),
        }
    }
}

/// The clock strip on `display` (this binary, `clock-window`), stopped when dropped.
fn start_clock(display: &str) -> anyhow::Result<Reaped> {
    Ok(Reaped(
        Command::new(std::env::current_exe()?)
            .args(["clock-window", "--display", display])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the clock strip")?,
    ))
}

/// Deskline and the reference at 1920×1080, 30 fps, `frames` frames each after a second of
/// warm-up, on one Xvfb showing the clock strip.
pub async fn run(frames: usize) -> anyhow::Result<Vec<GlassResult>> {
    let (deskline, xvfb) = {
        let (sharing, display) = crate::desktop::Sharing::start_for_glass(1920, 1080, 30).await?;
        let _clock = start_clock(&display)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (commands, mut updates) = sharing.viewer().await?;
        let mut tally = Tally::default();
        while tally.counted() < frames {
            let frame = match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await {
                Ok(Some(deskline_console::viewer::ViewerUpdate::Frame(frame))) => frame,
                Ok(Some(_)) => continue,
                Ok(None) => bail!("the viewer stopped"),
                Err(_) => bail!("no frame for 20 s"),
            };
            tally.frame(&frame.rgb, frame.width, now_ms());
        }
        commands.send(deskline_console::viewer::ViewerCommand::Leave).ok();
        (tally.result("Deskline (app → relay → viewer, QUIC)"), sharing.into_xvfb())
    };
    let _clock = start_clock(&xvfb.display)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reference = tokio::task::spawn_blocking(move || reference(&xvfb, frames)).await??;
    Ok(vec![deskline, reference])
}

/// ffmpeg x11grab → libx264 ultrafast/zerolatency → MPEG-TS/UDP → ffmpeg → RGB on a pipe.
fn reference(xvfb: &Xvfb, frames: usize) -> anyhow::Result<GlassResult> {
    let (width, height) = (1920usize, 1080usize);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut receiver = Reaped(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"])
            // (One decoding thread: frame threads would hold a frame back per thread.)
            .args(["-threads", "1", "-f", "mpegts", "-i", &format!("udp://127.0.0.1:{port}?fifo_size=1000000&overrun_nonfatal=1&buffer_size=8000000")])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ffmpeg (receiver)")?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let _sender = Reaped(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "x11grab", "-framerate", "30", "-video_size", &format!("{width}x{height}"), "-draw_mouse", "0"])
            .args(["-i", &xvfb.display, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "4M", "-g", "60", "-pix_fmt", "yuv420p"])
            .args(["-flush_packets", "1", "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", &format!("udp://127.0.0.1:{port}?pkt_size=1316")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("ffmpeg (x11grab sender)")?,
    );
    let mut out = receiver.0.stdout.take().context("the receiver's output")?;
    let mut frame = vec![0u8; width * height * 3];
    let mut tally = Tally::default();
    while tally.counted() < frames {
        out.read_exact(&mut frame).context("the reference receiver stopped")?;
        tally.frame(&frame, width, now_ms());
    }
    Ok(tally.result("reference (ffmpeg x11grab → x264 ultrafast/zerolatency → UDP → ffmpeg)"))
}
