//! Where frames come from: the [`FrameSource`] trait, and a synthetic source (a moving test
//! pattern, really encoded) for tests and demos without a display.

use crate::encode::{EncodeError, EncodedFrame, H264Encoder};
use deskline_protocol::DisplayInfo;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of encoded screen frames. Runs on its own thread (capture handles are often not
/// `Send`-friendly in use, and encoding is CPU work that must not block the network loop).
pub trait FrameSource: Send + 'static {
    /// The displays this source can share.
    fn displays(&self) -> Vec<DisplayInfo>;

    /// Captures and encodes the next frame; `Ok(None)` when nothing changed and nothing needs
    /// sending (unless `force_keyframe`, which always produces a keyframe).
    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError>;

    /// The bitrate to aim for from now on.
    fn set_bitrate(&mut self, _bitrate_bps: u32) {}
}

/// Microseconds since the Unix epoch, the clock frames are stamped with.
#[must_use]
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The colour of the left half of every synthetic frame (BGRA), for tests to check pixels.
pub const SYNTHETIC_LEFT_BGRA: [u8; 4] = [40, 160, 220, 0];

/// A moving test pattern: the left half a fixed colour ([`SYNTHETIC_LEFT_BGRA`]), the right
/// half dark grey with a white bar that moves one step per frame.
pub struct SyntheticSource {
    width: u32,
    height: u32,
    frame: u64,
    encoder: H264Encoder,
    pixels: Vec<u8>,
}

impl SyntheticSource {
    /// A source of `width` × `height` frames.
    pub fn new(width: u32, height: u32) -> Result<SyntheticSource, EncodeError> {
        let encoder = H264Encoder::new(width, height, 2_000_000, 30.0)?;
        Ok(SyntheticSource { width, height, frame: 0, encoder, pixels: vec![0; (width * height * 4) as usize] })
    }

    fn draw(&mut self) {
        let (w, h) = (self.width as usize, self.height as usize);
        let bar_width = (w / 16).max(2);
        let right = w / 2;
        let bar_x = right + (self.frame as usize * 4) % (w - right - bar_width).max(1);
        for y in 0..h {
            for x in 0..w {
                let px = if x < right {
                    SYNTHETIC_LEFT_BGRA
                } else if (bar_x..bar_x + bar_width).contains(&x) {
                    [255, 255, 255, 0]
                } else {
                    [48, 48, 48, 0]
                };
                let i = (y * w + x) * 4;
                self.pixels[i..i + 4].copy_from_slice(&px);
            }
        }
    }
}

impl FrameSource for SyntheticSource {
    fn displays(&self) -> Vec<DisplayInfo> {
        vec![DisplayInfo { id: 0, name: "synthetic".into(), width: self.width, height: self.height, primary: true }]
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        self.draw();
        let frame = self.encoder.encode_bgra(&self.pixels, force_keyframe || self.frame == 0, now_us())?;
        self.frame += 1;
        Ok(Some(frame))
    }
}
