//! The real screen: `scrap` captures the display, X11's DAMAGE extension says when anything
//! changed, and the shared H.264 encoder encodes it.
//!
//! An unchanged screen costs almost nothing: without damage since the last capture no image is
//! fetched at all, and a fetched image identical to the last one is not encoded. Keyframes still
//! go out on request and every [`KEYFRAME_INTERVAL`].

use crate::encode::{EncodeError, EncodedFrame, H264Encoder};
use crate::source::{FrameSource, now_us};
use deskline_protocol::DisplayInfo;
use std::time::{Duration, Instant};

/// A keyframe at least this often while streaming, so a viewer that lost one recovers soon
/// even when nobody asks.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(10);

/// Bitrate a screen stream starts with: crisp 1080p screen content.
pub const DEFAULT_BITRATE_BPS: u32 = 4_000_000;

/// Why the screen cannot be captured.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No display to capture (no X server, or it refused).
    #[error("cannot open the display: {0}")]
    Display(std::io::Error),
    /// X11 change notification failed.
    #[error("X11: {0}")]
    X11(String),
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<CaptureError> for EncodeError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Encode(e) => e,
            other => EncodeError::new(other.to_string()),
        }
    }
}

/// The displays of this machine, as reported to the relay.
pub fn displays() -> Result<Vec<DisplayInfo>, CaptureError> {
    let all = scrap::Display::all().map_err(CaptureError::Display)?;
    Ok(all
        .iter()
        .enumerate()
        .map(|(i, d)| DisplayInfo {
            id: u32::try_from(i).unwrap_or(u32::MAX),
            name: format!("display {}", i + 1),
            width: u32::try_from(d.width()).unwrap_or(0),
            height: u32::try_from(d.height()).unwrap_or(0),
            primary: i == 0,
        })
        .collect())
}

/// Tells whether the screen changed since the last look (X11 DAMAGE on the root window).
#[cfg(target_os = "linux")]
struct DamageWatch {
    conn: x11rb::rust_connection::RustConnection,
    damage: u32,
}

#[cfg(target_os = "linux")]
impl DamageWatch {
    fn new() -> Result<DamageWatch, CaptureError> {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
        let err = |e: &dyn std::fmt::Display| CaptureError::X11(e.to_string());
        let (conn, screen) = x11rb::connect(None).map_err(|e| err(&e))?;
        conn.damage_query_version(1, 1).map_err(|e| err(&e))?.reply().map_err(|e| err(&e))?;
        let root = conn.setup().roots.get(screen).ok_or_else(|| CaptureError::X11("no screen".into()))?.root;
        let damage = conn.generate_id().map_err(|e| err(&e))?;
        conn.damage_create(damage, root, ReportLevel::NON_EMPTY).map_err(|e| err(&e))?;
        conn.flush().map_err(|e| err(&e))?;
        Ok(DamageWatch { conn, damage })
    }

    /// True if anything was drawn since the last call (and re-arms the notification).
    fn changed(&mut self) -> bool {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::damage::ConnectionExt as _;
        let mut dirty = false;
        while let Ok(Some(event)) = self.conn.poll_for_event() {
            dirty |= matches!(event, x11rb::protocol::Event::DamageNotify(_));
        }
        if dirty {
            let _ = self.conn.damage_subtract(self.damage, x11rb::NONE, x11rb::NONE);
            let _ = self.conn.flush();
        }
        dirty
    }
}

/// Elsewhere (Windows, macOS): no change notification yet; every captured image is compared.
#[cfg(not(target_os = "linux"))]
struct DamageWatch;

#[cfg(not(target_os = "linux"))]
impl DamageWatch {
    fn new() -> Result<DamageWatch, CaptureError> {
        Err(CaptureError::X11("change notification is only implemented for X11".into()))
    }

    fn changed(&mut self) -> bool {
        true
    }
}

/// The primary display, captured and encoded.
pub struct ScreenSource {
    capturer: scrap::Capturer,
    width: usize,
    height: usize,
    encoder: H264Encoder,
    packed: Vec<u8>,
    previous: Vec<u8>,
    damage: Option<DamageWatch>,
    last_keyframe: Option<Instant>,
    /// Whether the last tick captured: scrap returns the image requested by the previous call,
    /// so after an idle spell one extra capture fetches a fresh one.
    warm: bool,
}

impl ScreenSource {
    /// Captures the primary display at `bitrate_bps`, `fps` at most.
    pub fn primary(bitrate_bps: u32, fps: f32) -> Result<ScreenSource, CaptureError> {
        let display = scrap::Display::primary().map_err(CaptureError::Display)?;
        let capturer = scrap::Capturer::new(display).map_err(CaptureError::Display)?;
        // H.264 needs even dimensions: an odd last row or column is left out.
        let width = capturer.width() & !1;
        let height = capturer.height() & !1;
        let encoder = H264Encoder::new(width as u32, height as u32, bitrate_bps, fps)?;
        let damage = match DamageWatch::new() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "no change notification: comparing every captured image");
                None
            }
        };
        Ok(ScreenSource {
            capturer,
            width,
            height,
            encoder,
            packed: vec![0; width * height * 4],
            previous: Vec::new(),
            damage,
            last_keyframe: None,
            warm: false,
        })
    }

    /// Fetches the current image into `packed` (rows cropped to even width, stride removed).
    fn grab(&mut self) -> Result<(), CaptureError> {
        let captures = if self.warm { 1 } else { 2 };
        let full_height = self.capturer.height().max(1);
        for i in 0..captures {
            let frame = self.capturer.frame().map_err(CaptureError::Display)?;
            if i + 1 < captures {
                continue;
            }
            let stride = frame.len() / full_height;
            let row_bytes = self.width * 4;
            for y in 0..self.height {
                let src = &frame[y * stride..y * stride + row_bytes];
                self.packed[y * row_bytes..(y + 1) * row_bytes].copy_from_slice(src);
            }
        }
        Ok(())
    }
}

impl FrameSource for ScreenSource {
    fn displays(&self) -> Vec<DisplayInfo> {
        displays().unwrap_or_default()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        let keyframe = force_keyframe || self.last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_INTERVAL);
        let changed = self.damage.as_mut().is_none_or(DamageWatch::changed);
        if !keyframe && !changed {
            self.warm = false;
            return Ok(None);
        }
        let captured_at = now_us();
        self.grab()?;
        self.warm = true;
        if !keyframe && self.packed == self.previous {
            return Ok(None);
        }
        let frame = self.encoder.encode_bgra(&self.packed, keyframe, captured_at)?;
        if frame.keyframe {
            self.last_keyframe = Some(Instant::now());
        }
        self.previous.clone_from(&self.packed);
        Ok(Some(frame))
    }
}
