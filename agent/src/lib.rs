//! # deskline-agent
//!
//! The end user's support app: it registers with the relay over QUIC using a link token or a
//! PIN, asks the end user for consent, then streams the screen as H.264 and applies the
//! controlling technician's mouse and keyboard input while consent allows it.
//!
//! It enforces consent a second time, locally: nothing is captured or injected beyond what the
//! end user granted, whatever the relay says.
//!
//! The connection logic ([`session`]) works against three traits so it is testable without a
//! display: [`FrameSource`] (frames), [`InputSink`] (input), [`ConsentPrompt`] (the question).
//! Real implementations: [`ScreenSource`] (the desktop captured through [`platform`], changes
//! detected by the system or by [`tiles`], openh264) and the platform's input sink
//! ([`platform::native`]`::Input`: enigo on X11, `SendInput` on Windows). For tests and demos
//! without a display: a synthetic source (a moving test pattern, really H.264-encoded), a
//! recording sink and a scripted prompt.
//!
//! Not here: the session rules (in `deskline-protocol`) and anything the technician sees.

pub mod capture;
pub mod clipboard;
pub mod download;
pub mod encode;
pub mod grants;
pub mod platform;
pub mod prompt;
pub mod rate;
pub mod session;
pub mod sink;
pub mod source;
pub mod tiles;
pub mod ui;

pub use encode::{EncodeError, EncodedFrame, H264Encoder};
pub use prompt::{ConsentPrompt, ScriptedAnswer, ScriptedPrompt};
pub use session::{AgentCommand, AgentConfig, AgentError, AgentEvent, ClipboardNote, Ended, Registered, register};
pub use capture::{DisplayOrigin, ScreenSource};
pub use sink::{InputSink, RecordingSink};
pub use source::{FrameSource, SyntheticSource};

/// The agent's limits.
pub mod limits {
    /// Frames per second captured at most; the relay asks for 30 unless configured otherwise.
    pub const MAX_FPS: u16 = 60;
}
