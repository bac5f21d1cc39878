//! The real screen: one display of the [`Desktop`] captured, the cursor drawn in, encoded
//! with the shared H.264 encoder. The same code runs on every platform ([`crate::platform`]).
//!
//! An unchanged screen costs almost nothing: where the desktop reports drawing (X11 DAMAGE),
//! without damage or pointer movement since the last look no image is fetched at all;
//! everywhere a fetched image is compared with the last one tile by tile ([`Tiles`]) and an
//! unchanged one is not encoded. Keyframes still go out on request and every
//! [`KEYFRAME_INTERVAL`]. A resolution or layout change rebuilds the capturer and the encoder
//! for the new size and starts with a keyframe; viewers see the new size in the frames
//! themselves.

pub use crate::platform::CaptureError;
use crate::encode::{EncodeError, EncodedFrame, H264Encoder};
use crate::platform::{CursorImage, Desktop, Grabber as _, Monitor, native};
use crate::rate::Rate;
use crate::source::{FrameSource, now_us};
use crate::tiles::Tiles;
use deskline_protocol::DisplayInfo;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// A keyframe at least this often while streaming, so a viewer that lost one recovers soon
/// even when nobody asks.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(10);

/// Where the desktop cannot say what was drawn, every look copies the whole screen (a 1080p
/// `BitBlt` costs milliseconds): after this many looks without a change, only every
/// [`IDLE_LOOK_EVERY`]-th tick looks (10 times a second at 30 fps) until something changes.
/// Pointer movement and keyframe requests still look at once.
pub const IDLE_AFTER_LOOKS: u32 = 30;
/// See [`IDLE_AFTER_LOOKS`].
pub const IDLE_LOOK_EVERY: u32 = 3;

/// Whether to skip this tick's look, `unchanged` looks after the last change.
#[must_use]
pub fn idle_skip(unchanged: u32) -> bool {
    unchanged >= IDLE_AFTER_LOOKS && !unchanged.is_multiple_of(IDLE_LOOK_EVERY)
}

/// Bitrate a screen stream starts with: crisp 1080p screen content.
pub const DEFAULT_BITRATE_BPS: u32 = 4_000_000;

impl From<CaptureError> for EncodeError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Encode(e) => e,
            CaptureError::Blocked(reason) => EncodeError::paused(reason),
            other => EncodeError::new(other.to_string()),
        }
    }
}

/// The displays of this machine, as reported to the relay (the primary is id 0).
pub fn displays() -> Result<Vec<DisplayInfo>, CaptureError> {
    Ok(native::Desktop::open()?.monitors()?.into_iter().map(|m| m.info).collect())
}

/// Where the shared display's top-left corner is on the desktop. The capture sets it, the
/// input sink reads it: pointer positions arrive in the shared display's pixels.
#[derive(Debug, Clone, Default)]
pub struct DisplayOrigin(Arc<AtomicI64>);

impl DisplayOrigin {
    /// The origin, in desktop pixels.
    #[must_use]
    pub fn get(&self) -> (i32, i32) {
        let packed = self.0.load(Ordering::Acquire);
        ((packed >> 32) as i32, packed as i32)
    }

    fn set(&self, x: i32, y: i32) {
        self.0.store((i64::from(x) << 32) | i64::from(y as u32), Ordering::Release);
    }
}

/// Draws `cursor` (premultiplied ARGB) over a tightly packed BGRA image with its hot spot at
/// `(x, y)`; whatever falls outside the image is left out.
pub fn draw_cursor(bgra: &mut [u8], width: usize, height: usize, cursor: &CursorImage, x: i32, y: i32) {
    let left = x - cursor.hot_x;
    let top = y - cursor.hot_y;
    for row in 0..cursor.height {
        let py = top + row as i32;
        if py < 0 || py >= height as i32 {
            continue;
        }
        for col in 0..cursor.width {
            let px = left + col as i32;
            if px < 0 || px >= width as i32 {
                continue;
            }
            let argb = cursor.argb[row * cursor.width + col];
            let alpha = argb >> 24;
            if alpha == 0 {
                continue;
            }
            let i = (py as usize * width + px as usize) * 4;
            let inverse = 255 - alpha;
            for (channel, shift) in [(0, 0), (1, 8), (2, 16)] {
                let source = (argb >> shift) & 0xff;
                let destination = u32::from(bgra[i + channel]);
                bgra[i + channel] = (source + (destination * inverse + 127) / 255).min(255) as u8;
            }
        }
    }
}

/// One display of the desktop, captured and encoded.
pub struct ScreenSource<D: Desktop = native::Desktop> {
    desktop: D,
    monitor: Monitor,
    grabber: D::Grabber,
    origin: DisplayOrigin,
    rate: Rate,
    width: usize,
    height: usize,
    encoder: H264Encoder,
    /// The image to encode: the last one captured, with the cursor drawn in.
    packed: Vec<u8>,
    /// The last image captured, without the cursor.
    tiles: Tiles,
    pointer: Option<(i32, i32)>,
    cursor: Option<CursorImage>,
    last_keyframe: Option<Instant>,
    /// The size or the display changed: the next frame must be a keyframe.
    restarted: bool,
    /// Whether the last tick captured: the capturer returns the image requested by the
    /// previous call, so after an idle spell one extra capture fetches a fresh one.
    warm: bool,
    /// The display list changed and the app has not been told yet.
    new_displays: Option<Vec<DisplayInfo>>,
    /// Ticks since the picture last changed (where the desktop cannot report drawing).
    unchanged_looks: u32,
}

impl<D: Desktop> ScreenSource<D> {
    /// Captures the primary display at `rate`, publishing its position to `origin`.
    pub fn primary(rate: Rate, origin: DisplayOrigin) -> Result<ScreenSource<D>, CaptureError> {
        let desktop = D::open()?;
        let monitor = desktop.monitors()?.swap_remove(0);
        let (grabber, encoder, width, height) = ScreenSource::open(&desktop, &monitor, rate)?;
        origin.set(monitor.x, monitor.y);
        Ok(ScreenSource {
            desktop,
            monitor,
            grabber,
            origin,
            rate,
            width,
            height,
            encoder,
            packed: vec![0; width * height * 4],
            tiles: Tiles::new(),
            pointer: None,
            cursor: None,
            last_keyframe: None,
            restarted: true,
            warm: false,
            new_displays: None,
            unchanged_looks: 0,
        })
    }

    /// A capturer and an encoder for `monitor` (H.264 needs even sizes: an odd last row or
    /// column is left out).
    #[allow(clippy::type_complexity)]
    fn open(desktop: &D, monitor: &Monitor, rate: Rate) -> Result<(D::Grabber, H264Encoder, usize, usize), CaptureError> {
        let grabber = desktop.grabber(monitor)?;
        let width = grabber.width() & !1;
        let height = grabber.height() & !1;
        let encoder = H264Encoder::new(width as u32, height as u32, rate.bitrate_bps, f32::from(rate.fps))?;
        Ok((grabber, encoder, width, height))
    }

    /// Shares `monitor` from now on (another display, or the same one after a change).
    fn switch_to(&mut self, monitor: Monitor) -> Result<(), CaptureError> {
        let (grabber, encoder, width, height) = ScreenSource::open(&self.desktop, &monitor, self.rate)?;
        tracing::info!(display = %monitor.info.name, width, height, x = monitor.x, y = monitor.y, "sharing display");
        self.origin.set(monitor.x, monitor.y);
        self.monitor = monitor;
        self.grabber = grabber;
        self.encoder = encoder;
        self.width = width;
        self.height = height;
        self.packed = vec![0; width * height * 4];
        self.tiles.clear();
        self.restarted = true;
        self.warm = false;
        Ok(())
    }

    /// After a resolution or layout change: the same display (by name, else by number, else
    /// the primary) at its new size and place.
    fn follow_layout(&mut self) -> Result<(), CaptureError> {
        let mut monitors = self.desktop.monitors()?;
        self.new_displays = Some(monitors.iter().map(|m| m.info.clone()).collect());
        let index = monitors
            .iter()
            .position(|m| m.info.name == self.monitor.info.name)
            .or_else(|| monitors.iter().position(|m| m.info.id == self.monitor.info.id))
            .unwrap_or(0);
        let monitor = monitors.swap_remove(index);
        if monitor.x != self.monitor.x
            || monitor.y != self.monitor.y
            || monitor.info.width != self.monitor.info.width
            || monitor.info.height != self.monitor.info.height
        {
            self.switch_to(monitor)?;
        } else {
            self.monitor = monitor;
        }
        Ok(())
    }

    /// Fetches the current image into `tiles` (rows cropped to the even width); the area
    /// that changed since the last fetch, if any.
    fn grab(&mut self) -> Result<Option<crate::tiles::Rect>, CaptureError> {
        if self.grabber.pipelined() && !self.warm {
            // The capturer returns the image requested by the previous call: ask again.
            self.grabber.frame()?;
        }
        let (frame, stride) = self.grabber.frame()?;
        let changed = self.tiles.update(frame, stride, self.width, self.height);
        self.warm = true;
        Ok(changed)
    }
}

impl<D: Desktop + 'static> FrameSource for ScreenSource<D> {
    fn displays(&self) -> Vec<DisplayInfo> {
        self.desktop.monitors().map(|ms| ms.into_iter().map(|m| m.info).collect()).unwrap_or_default()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        let changes = self.desktop.poll();
        if changes.layout {
            self.follow_layout()?;
        }
        if changes.cursor_shape {
            self.cursor = None;
        }
        let pointer = self.desktop.pointer();
        let cursor_changed = changes.cursor_shape || pointer != self.pointer;
        self.pointer = pointer;
        let keyframe = force_keyframe || self.restarted || self.last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_INTERVAL);
        if !keyframe && !changes.drawn && !cursor_changed {
            self.warm = false;
            return Ok(None);
        }
        if changes.drawn_unknown && !keyframe && !cursor_changed && idle_skip(self.unchanged_looks) {
            self.unchanged_looks += 1;
            return Ok(None);
        }
        let captured_at = now_us();
        if changes.drawn || keyframe || self.tiles.is_empty() {
            let changed = self.grab()?;
            self.unchanged_looks = if changed.is_some() { 0 } else { self.unchanged_looks.saturating_add(1) };
            if !keyframe && !cursor_changed && changed.is_none() {
                return Ok(None);
            }
        } else {
            // Only the pointer moved: the last image, with the cursor somewhere else.
            self.warm = false;
        }
        self.packed.copy_from_slice(self.tiles.image());
        if self.cursor.is_none() {
            self.cursor = self.desktop.cursor();
        }
        if let (Some(cursor), Some((x, y))) = (&self.cursor, pointer) {
            draw_cursor(&mut self.packed, self.width, self.height, cursor, x - self.monitor.x, y - self.monitor.y);
        }
        let mut frame = self.encoder.encode_bgra(&self.packed, keyframe, captured_at)?;
        frame.display = self.monitor.info.id;
        if frame.keyframe {
            self.last_keyframe = Some(Instant::now());
            self.restarted = false;
        }
        Ok(Some(frame))
    }

    fn displays_changed(&mut self) -> Option<Vec<DisplayInfo>> {
        self.new_displays.take()
    }

    fn set_rate(&mut self, rate: Rate) {
        self.rate = rate;
        self.encoder.set_rate(rate);
    }

    fn select_display(&mut self, id: u32) -> Result<(), EncodeError> {
        let mut monitors = self.desktop.monitors()?;
        let index = monitors.iter().position(|m| m.info.id == id).unwrap_or(0);
        self.switch_to(monitors.swap_remove(index))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_screen_is_looked_at_less_often_after_a_while() {
        let looks = |from: u32, to: u32| (from..to).filter(|&n| !idle_skip(n)).count();
        assert_eq!(looks(0, IDLE_AFTER_LOOKS), IDLE_AFTER_LOOKS as usize, "every tick right after a change");
        assert_eq!(looks(IDLE_AFTER_LOOKS, IDLE_AFTER_LOOKS + 30), 10, "a third of the ticks once idle");
    }

    #[test]
    fn the_origin_round_trips_negative_and_positive_values() {
        let origin = DisplayOrigin::default();
        assert_eq!(origin.get(), (0, 0));
        for (x, y) in [(1920, 0), (-1280, 200), (0, -1080), (i32::MAX, i32::MIN)] {
            origin.clone().set(x, y);
            assert_eq!(origin.get(), (x, y));
        }
    }

    /// A 3×3 cursor: opaque white centre (the hot spot), half-transparent black left and
    /// right of it, transparent elsewhere.
    fn cursor() -> CursorImage {
        let half_black = 0x8000_0000; // premultiplied: black at alpha 128
        #[rustfmt::skip]
        let argb = vec![
            0, 0, 0,
            half_black, 0xffff_ffff, half_black,
            0, 0, 0,
        ];
        CursorImage { width: 3, height: 3, hot_x: 1, hot_y: 1, argb }
    }

    fn pixel(bgra: &[u8], width: usize, x: usize, y: usize) -> [u8; 4] {
        let i = (y * width + x) * 4;
        bgra[i..i + 4].try_into().unwrap()
    }

    #[test]
    fn the_cursor_is_blended_at_its_hot_spot() {
        let (w, h) = (4, 4);
        let mut image = [200u8, 100, 50, 0].repeat(w * h);
        draw_cursor(&mut image, w, h, &cursor(), 2, 2);
        assert_eq!(pixel(&image, w, 2, 2), [255, 255, 255, 0], "opaque white at the hot spot");
        assert_eq!(pixel(&image, w, 1, 2), [100, 50, 25, 0], "half-transparent black halves the background");
        assert_eq!(pixel(&image, w, 3, 2), [100, 50, 25, 0]);
        assert_eq!(pixel(&image, w, 2, 1), [200, 100, 50, 0], "transparent pixels leave it alone");
        assert_eq!(pixel(&image, w, 0, 0), [200, 100, 50, 0]);
    }

    #[test]
    fn a_cursor_at_the_edge_is_clipped() {
        let (w, h) = (4, 4);
        let mut image = vec![0u8; w * h * 4];
        draw_cursor(&mut image, w, h, &cursor(), 0, 0);
        assert_eq!(pixel(&image, w, 0, 0), [255, 255, 255, 0]);
        draw_cursor(&mut image, w, h, &cursor(), 4, 4);
        draw_cursor(&mut image, w, h, &cursor(), -5, 100);
        let white = image.chunks(4).filter(|p| p[..3] == [255, 255, 255]).count();
        assert_eq!(white, 1, "nothing drawn outside the image");
    }
}
