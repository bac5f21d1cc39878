//! # deskline-protocol
//!
//! The shared language of Deskline: wire messages, their codec, session codes and the
//! service-desk session state machine.
//!
//! This crate is **sans-IO**: it opens no sockets, reads no clock, spawns no thread and uses no
//! global random generator. Time ([`Timestamp`]) and randomness (a `rand_core::CryptoRng`) are
//! passed in by the caller. The relay and the agent are thin drivers around it, and everything
//! here is tested without a network.
//!
//! What it is not: it does not know about QUIC, HTTP, storage or video encoding.
//!
//! - [`message`]: every message of the protocol (DESIGN §4) as typed values.
//! - [`codec`]: the length-prefixed, versioned binary framing, with hard limits.
//! - [`code`]: link tokens, PINs and resumption secrets.
//! - [`embed`]: the session link a support app download carries at its end.
//! - [`session`]: session states, actions and audit events (DESIGN §2).
//! - [`limits`]: every limit, with its reason.

pub mod capability;
pub mod code;
pub mod codec;
pub mod embed;
pub mod ids;
pub mod keycode;
pub mod limits;
pub mod message;
pub mod session;

pub use capability::{Capabilities, CapabilitiesParseError, InvalidCapabilities};
pub use code::{CodeError, LinkToken, Pin, ResumeSecret, SessionLink};
pub use codec::{DecodeError, Decoder, EncodeError, decode_exact, encode, encode_into};
pub use ids::{ChannelId, SessionId, TechnicianId, Timestamp};
pub use keycode::KeyCode;
pub use message::*;

/// The version byte in every message header, and the behaviour version in [`Hello`]. 4: a
/// capability set carries files and clipboard (four booleans where there were two). 5: a
/// consent request says whether the session is recorded.
pub const PROTOCOL_VERSION: u8 = 5;

/// The QUIC ALPN protocol name.
pub const ALPN: &[u8] = b"deskline/1";

#[cfg(test)]
mod codec_tests;
