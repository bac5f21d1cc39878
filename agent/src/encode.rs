//! The H.264 encoder: openh264 in camera real-time mode with background detection, low
//! complexity and no frame skipping, with bitrate control (chosen by measurement over
//! openh264's screen-content mode: 2–3× faster at 5–10 dB better PSNR on desktop content, text
//! visibly cleaner; bench/RESULTS.md, "Encode").
//!
//! Output is one Annex-B access unit per frame, SPS and PPS before every IDR, so any viewer
//! can start decoding at a keyframe.

use openh264::encoder::{BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, RateControlMode, UsageType};
use openh264::formats::{BgraSliceU8, YUVBuffer};
use openh264::OpenH264API;
use openh264_sys2::{ENCODER_OPTION_BITRATE, ENCODER_OPTION_FRAME_RATE, SBitrateInfo, SPATIAL_LAYER_ALL};
use crate::rate::Rate;
use deskline_protocol::PauseReason;

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The access unit (Annex-B).
    pub data: Vec<u8>,
    /// Can a decoder start here?
    pub keyframe: bool,
    /// Which display it shows.
    pub display: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Capture time on this machine's clock, microseconds since the Unix epoch.
    pub capture_us: u64,
}

/// Why encoding (or getting the image to encode) failed.
#[derive(Debug, thiserror::Error)]
#[error("H.264 encoder: {message}")]
pub struct EncodeError {
    message: String,
    paused: Option<PauseReason>,
}

impl EncodeError {
    /// An error with this description.
    #[must_use]
    pub fn new(message: String) -> EncodeError {
        EncodeError { message, paused: None }
    }

    /// The screen cannot be shown for a while (a UAC prompt, the lock screen): capture
    /// resumes by itself, and technicians are told why the picture stopped meanwhile.
    #[must_use]
    pub fn paused(reason: PauseReason) -> EncodeError {
        EncodeError { message: reason.describe().to_owned(), paused: Some(reason) }
    }

    /// Why the screen cannot be shown for now, when this is such a pause.
    #[must_use]
    pub fn pause_reason(&self) -> Option<PauseReason> {
        self.paused
    }
}

impl From<openh264::Error> for EncodeError {
    fn from(e: openh264::Error) -> Self {
        EncodeError::new(e.to_string())
    }
}

/// How openh264 is tuned: its usage mode and the analysis passes it runs per frame (each a
/// lever `deskline-bench encode` measures beside the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Camera real-time mode instead of screen-content real-time mode.
    pub camera: bool,
    /// openh264's low complexity (fewer mode decisions) instead of medium.
    pub low_complexity: bool,
    /// Background detection: macroblocks that did not change are coded as skipped early.
    pub background_detection: bool,
    /// Scene-change detection (a new IDR when the whole picture changes).
    pub scene_change_detection: bool,
    /// The rate control may skip frames (nothing out) to stay within the bitrate.
    pub frame_skipping: bool,
}

impl Tuning {
    /// Screen-content real-time mode (openh264's own advice for desktops; the app's until
    /// measured against the others).
    pub const SCREEN: Tuning =
        Tuning { camera: false, low_complexity: false, background_detection: false, scene_change_detection: true, frame_skipping: true };
    /// Camera real-time mode, no other change.
    pub const CAMERA: Tuning = Tuning { camera: true, ..Tuning::SCREEN };
    /// Camera mode with background detection.
    pub const CAMERA_BACKGROUND: Tuning = Tuning { background_detection: true, ..Tuning::CAMERA };
    /// Camera mode, low complexity, background detection.
    pub const CAMERA_FAST: Tuning = Tuning { low_complexity: true, ..Tuning::CAMERA_BACKGROUND };
    /// What the app uses: camera mode, background detection, low complexity, and no frame
    /// skipping (a skipped frame holds the old picture: after a keyframe the rate control
    /// skipped several while well under its bitrate, and a scrolled page stuttered).
    pub const APP: Tuning = Tuning { frame_skipping: false, ..Tuning::CAMERA_FAST };
    /// What the benchmarks compare: each of those, and the last two never skipping a frame.
    pub const MEASURED: [Tuning; 6] = [
        Tuning::SCREEN,
        Tuning::CAMERA,
        Tuning::CAMERA_BACKGROUND,
        Tuning::CAMERA_FAST,
        Tuning { frame_skipping: false, ..Tuning::CAMERA_BACKGROUND },
        Tuning::APP,
    ];

    /// A short name for tables: "screen", "camera+bg+low".
    #[must_use]
    pub fn name(self) -> String {
        let mut name = String::from(if self.camera { "camera" } else { "screen" });
        if self.background_detection {
            name.push_str("+bg");
        }
        if self.low_complexity {
            name.push_str("+low");
        }
        if !self.scene_change_detection {
            name.push_str("-scd");
        }
        if !self.frame_skipping {
            name.push_str("-skip");
        }
        name
    }
}

/// An H.264 encoder for BGRA frames of one size.
pub struct H264Encoder {
    encoder: Encoder,
    yuv: YUVBuffer,
    width: usize,
    height: usize,
}

impl H264Encoder {
    /// An encoder for `width` × `height` (both even) at about `bitrate_bps` and `fps`, on one
    /// thread (the app shares the machine with the end user's work).
    pub fn new(width: u32, height: u32, bitrate_bps: u32, fps: f32) -> Result<H264Encoder, EncodeError> {
        H264Encoder::with_threads(width, height, bitrate_bps, fps, 1)
    }

    /// The same with `threads` encoder threads.
    pub fn with_threads(width: u32, height: u32, bitrate_bps: u32, fps: f32, threads: u16) -> Result<H264Encoder, EncodeError> {
        H264Encoder::with_tuning(width, height, bitrate_bps, fps, threads, Tuning::APP)
    }

    /// The same with openh264 tuned for `tuning` (the benchmarks compare both).
    pub fn with_tuning(width: u32, height: u32, bitrate_bps: u32, fps: f32, threads: u16, tuning: Tuning) -> Result<H264Encoder, EncodeError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(EncodeError::new(format!("{width}x{height}: width and height must be even and non-zero")));
        }
        let usage = if tuning.camera { UsageType::CameraVideoRealTime } else { UsageType::ScreenContentRealTime };
        let config = EncoderConfig::new()
            .usage_type(usage)
            .bitrate(BitRate::from_bps(bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(fps))
            .rate_control_mode(RateControlMode::Bitrate)
            .complexity(if tuning.low_complexity { Complexity::Low } else { Complexity::Medium })
            // Adaptive quantisation does not suit screen content (in screen mode openh264 warns
            // and turns it and background detection off).
            .adaptive_quantization(false)
            .background_detection(tuning.background_detection)
            .scene_change_detect(tuning.scene_change_detection)
            .skip_frames(tuning.frame_skipping)
            .num_threads(threads);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(H264Encoder { encoder, yuv: YUVBuffer::new(width as usize, height as usize), width: width as usize, height: height as usize })
    }

    /// Changes the target bitrate and frame rate of the running encoder (no new keyframe).
    #[allow(unsafe_code)] // the crate's raw API is the only way; see below
    pub fn set_rate(&mut self, rate: Rate) {
        // The openh264 crate has no safe setter; SetOption with these two options is the
        // library's documented way to change the rate mid-stream, and changes nothing the
        // crate relies on (it keeps its own copy of the configuration for re-initialisation,
        // which happens only on a size change, and this encoder's size never changes).
        let mut bitrate = SBitrateInfo { iLayer: SPATIAL_LAYER_ALL, iBitrate: i32::try_from(rate.bitrate_bps).unwrap_or(i32::MAX) };
        let mut fps = f32::from(rate.fps.max(1));
        // SAFETY: both pointers are to live values of the types these options take, for the
        // duration of the call; the encoder is initialised (it encoded or was just created).
        let status = unsafe {
            let api = self.encoder.raw_api();
            api.set_option(ENCODER_OPTION_BITRATE, std::ptr::addr_of_mut!(bitrate).cast())
                | api.set_option(ENCODER_OPTION_FRAME_RATE, std::ptr::addr_of_mut!(fps).cast())
        };
        if status != 0 {
            tracing::warn!(status, ?rate, "the encoder refused the new rate");
        }
    }

    /// Encodes one BGRA frame (`width * height * 4` bytes, tightly packed).
    pub fn encode_bgra(&mut self, bgra: &[u8], force_keyframe: bool, capture_us: u64) -> Result<EncodedFrame, EncodeError> {
        if bgra.len() != self.width * self.height * 4 {
            return Err(EncodeError::new(format!("expected {} bytes of BGRA, got {}", self.width * self.height * 4, bgra.len())));
        }
        self.yuv.read_bgra8(BgraSliceU8::new(bgra, (self.width, self.height)));
        if force_keyframe {
            self.encoder.force_intra_frame();
        }
        let bitstream = self.encoder.encode(&self.yuv)?;
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        Ok(EncodedFrame {
            data: bitstream.to_vec(),
            keyframe,
            display: 0,
            width: self.width as u32,
            height: self.height as u32,
            capture_us,
        })
    }
}
