//! Where frames come from: the [`FrameSource`] trait, and a synthetic source (a moving test
//! pattern, really encoded) for tests and demos without a display.

use crate::encode::{EncodeError, EncodedFrame, H264Encoder};
use crate::rate::Rate;
use deskline_protocol::DisplayInfo;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of encoded screen frames. It is created on, and runs on, its own thread: capture
/// handles are often tied to their thread (scrap's is not `Send`), and encoding is CPU work that
/// must not block the network loop.
pub trait FrameSource: 'static {
    /// The displays this source can share.
    fn displays(&self) -> Vec<DisplayInfo>;

    /// Captures and encodes the next frame; `Ok(None)` when nothing changed and nothing needs
    /// sending (unless `force_keyframe`, which always produces a keyframe).
    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError>;

    /// The frame rate and bitrate to aim for from now on (rate adaptation).
    fn set_rate(&mut self, _rate: Rate) {}

    /// The displays, if they changed since the last call (resolution, monitors); the app
    /// tells the relay so technicians see the current list.
    fn displays_changed(&mut self) -> Option<Vec<DisplayInfo>> {
        None
    }

    /// Shares another display ([`DisplayInfo::id`]; an unknown one means the primary). The
    /// next frame is a keyframe of the new display.
    fn select_display(&mut self, _id: u32) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Microseconds since the Unix epoch, the clock frames are stamped with.
#[must_use]
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The colour of the left half of every synthetic frame (BGRA), for tests to check pixels.
pub const SYNTHETIC_LEFT_BGRA: [u8; 4] = [40, 160, 220, 0];

/// Bits of the capture-time stamp in every synthetic frame: the capture time in milliseconds,
/// modulo 2^32 (a latency measured from it wraps after 49 days, far beyond any frame).
pub const STAMP_BITS: u32 = 32;
/// Edge of one stamp cell in pixels: big enough to survive H.264 at any tested bitrate.
pub const STAMP_CELL: u32 = 8;
/// Left edge of the stamp (in the left half, which needs 8 + 32 × 8 = 264 pixels).
pub const STAMP_X: u32 = 8;
/// Top edge of the stamp.
pub const STAMP_Y: u32 = 8;

/// A moving test pattern: the left half a fixed colour ([`SYNTHETIC_LEFT_BGRA`]) with the
/// capture time stamped at its top ([`STAMP_BITS`] black or white cells, most significant
/// first, white for 1) when the frame is wide enough, the right half dark grey with a white bar
/// that moves one step per frame.
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

    /// The bar's left edge in frame `n`.
    fn bar_x(&self, n: u64) -> usize {
        let w = self.width as usize;
        let right = w / 2;
        right + (n as usize * 4) % (w - right - self.bar_width()).max(1)
    }

    fn bar_width(&self) -> usize {
        (self.width as usize / 16).max(2)
    }

    /// Paints columns `x0..x1` of every row with one colour.
    fn fill_columns(&mut self, x0: usize, x1: usize, px: [u8; 4]) {
        let w = self.width as usize;
        for y in 0..self.height as usize {
            for x in x0..x1.min(w) {
                let i = (y * w + x) * 4;
                self.pixels[i..i + 4].copy_from_slice(&px);
            }
        }
    }

    /// Moves the bar: repaints only the columns that change (the background was painted once).
    fn draw(&mut self) {
        let w = self.width as usize;
        if self.frame == 0 {
            self.fill_columns(0, w / 2, SYNTHETIC_LEFT_BGRA);
            self.fill_columns(w / 2, w, SYNTHETIC_RIGHT_BGRA);
        } else {
            let old = self.bar_x(self.frame - 1);
            self.fill_columns(old, old + self.bar_width(), SYNTHETIC_RIGHT_BGRA);
        }
        let new = self.bar_x(self.frame);
        self.fill_columns(new, new + self.bar_width(), [255, 255, 255, 0]);
    }
}

impl SyntheticSource {
    /// Paints the low [`STAMP_BITS`] bits of `ms` as cells at the top of the left half.
    fn stamp(&mut self, ms: u64) {
        let (w, h, cell) = (self.width as usize, self.height as usize, STAMP_CELL as usize);
        let (x0, y0) = (STAMP_X as usize, STAMP_Y as usize);
        if x0 + STAMP_BITS as usize * cell > w / 2 || y0 + cell > h {
            return;
        }
        for bit in 0..STAMP_BITS as usize {
            let on = ms >> (STAMP_BITS as usize - 1 - bit) & 1 == 1;
            let px = if on { [255, 255, 255, 0] } else { [0, 0, 0, 0] };
            for y in y0..y0 + cell {
                for x in x0 + bit * cell..x0 + (bit + 1) * cell {
                    let i = (y * w + x) * 4;
                    self.pixels[i..i + 4].copy_from_slice(&px);
                }
            }
        }
    }
}

/// Reads the capture-time stamp (milliseconds modulo 2^[`STAMP_BITS`]) back from a decoded
/// synthetic frame in RGB, 3 bytes per pixel, `width` pixels per row.
#[must_use]
pub fn read_stamp(rgb: &[u8], width: usize) -> Option<u64> {
    let y = (STAMP_Y + STAMP_CELL / 2) as usize;
    (0..STAMP_BITS as usize).try_fold(0u64, |stamp, bit| {
        let x = STAMP_X as usize + bit * STAMP_CELL as usize + STAMP_CELL as usize / 2;
        let i = (y * width + x) * 3;
        let sum: u32 = rgb.get(i..i + 3)?.iter().map(|&v| u32::from(v)).sum();
        Some(stamp << 1 | u64::from(sum > 384))
    })
}

/// The colour of the right half (apart from the moving white bar).
pub const SYNTHETIC_RIGHT_BGRA: [u8; 4] = [48, 48, 48, 0];

impl FrameSource for SyntheticSource {
    fn displays(&self) -> Vec<DisplayInfo> {
        vec![DisplayInfo { id: 0, name: "synthetic".into(), width: self.width, height: self.height, primary: true }]
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        self.draw();
        let captured = now_us();
        self.stamp(captured / 1000);
        let frame = self.encoder.encode_bgra(&self.pixels, force_keyframe || self.frame == 0, captured)?;
        self.frame += 1;
        Ok(Some(frame))
    }

    fn set_rate(&mut self, rate: Rate) {
        self.encoder.set_rate(rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::formats::YUVSource as _;

    #[test]
    fn the_capture_time_survives_encoding_in_the_picture() {
        let mut source = SyntheticSource::new(640, 360).unwrap();
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        for _ in 0..3 {
            let frame = source.next_frame(false).unwrap().unwrap();
            let yuv = decoder.decode(&frame.data).unwrap().expect("a picture per frame");
            let (w, h) = yuv.dimensions();
            let mut rgb = vec![0; w * h * 3];
            yuv.write_rgb8(&mut rgb);
            assert_eq!(read_stamp(&rgb, w), Some(frame.capture_us / 1000 % (1 << STAMP_BITS)));
        }
    }
}
