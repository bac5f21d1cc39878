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
//! This crate ships a synthetic source (a moving test pattern, really H.264-encoded), a
//! recording sink and a scripted prompt; the real capture (`scrap`), injection (`enigo`) and
//! egui windows come with the support-app issue.
//!
//! Not here: the session rules (in `deskline-protocol`) and anything the technician sees.

pub mod encode;
pub mod prompt;
pub mod session;
pub mod sink;
pub mod source;

pub use encode::{EncodedFrame, H264Encoder};
pub use prompt::{ConsentPrompt, ScriptedAnswer, ScriptedPrompt};
pub use session::{AgentCommand, AgentConfig, AgentError, AgentEvent, Ended, Registered, register};
pub use sink::{InputSink, RecordingSink};
pub use source::{FrameSource, SyntheticSource};

/// The agent's limits.
pub mod limits {
    /// Frames per second captured at most: smooth for screen work, half the cost of 60.
    pub const MAX_FPS: u16 = 30;
}
