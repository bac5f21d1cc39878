//! The length-prefixed, versioned binary codec.
//!
//! Every message is framed as
//!
//! ```text
//! +----------------+-----------+------------------------------+
//! | length: u32 BE | version:1 | body: postcard(Message)      |
//! +----------------+-----------+------------------------------+
//!   length counts the version byte and the body
//! ```
//!
//! postcard is compact (varints, no field names) and its decoder checks every length against
//! the bytes actually present, so a lying length field can never make it allocate. On top of
//! that the framing refuses any message longer than the stream's limit *before* buffering it,
//! and every decoded message passes [`Message::validate`].

use crate::PROTOCOL_VERSION;
use crate::limits::{MAX_CONTROL_MESSAGE_BYTES, MAX_VIDEO_FRAME_BYTES};
use crate::message::{Message, ValidationError};

/// Why bytes could not be decoded. The connection that sent them should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length field announces more than this stream allows.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    Oversized {
        /// The announced length.
        len: usize,
        /// The stream's limit.
        limit: usize,
    },
    /// The length field is zero: there is not even a version byte.
    #[error("empty message")]
    Empty,
    /// The message was written by a protocol version this side does not speak.
    #[error("unknown protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    UnknownVersion(u8),
    /// The input ended inside a message.
    #[error("message ends early")]
    Truncated,
    /// A message kind this side does not know (an unknown member of a nested enum is
    /// [`DecodeError::Malformed`]: serde does not say which field it was).
    #[error("unknown message kind")]
    UnknownVariant,
    /// The body is not a valid encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes left over after a complete message in its frame.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    /// The message decoded but breaks a rule.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message breaks a rule: the peer would refuse it.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
    /// The encoded message is larger than its stream allows.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    Oversized {
        /// The encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The serializer failed (should not happen for valid messages).
    #[error("cannot encode: {0}")]
    Serialize(String),
}

/// The size limit for a message: video frames have their own streams and a larger limit.
#[must_use]
pub const fn limit_for(message: &Message) -> usize {
    if message.is_video() { MAX_VIDEO_FRAME_BYTES } else { MAX_CONTROL_MESSAGE_BYTES }
}

/// Appends the framed encoding of `message` to `out`. On error `out` is left as it was.
pub fn encode_into(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    message.validate()?;
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, PROTOCOL_VERSION]);
    let result = postcard::to_extend(message, std::mem::take(out));
    let mut buf = match result {
        Ok(buf) => buf,
        Err(e) => return Err(EncodeError::Serialize(e.to_string())),
    };
    let len = buf.len() - start - 4;
    let limit = limit_for(message);
    if len > limit {
        buf.truncate(start);
        *out = buf;
        return Err(EncodeError::Oversized { len, limit });
    }
    // `len` ≤ limit ≤ 8 MiB, so it fits in a u32.
    let len_bytes = u32::try_from(len).map_err(|_| EncodeError::Oversized { len, limit })?;
    buf[start..start + 4].copy_from_slice(&len_bytes.to_be_bytes());
    *out = buf;
    Ok(())
}

/// The framed encoding of `message`.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Decodes one message body (everything after the length field: version byte and postcard).
fn decode_body(body: &[u8]) -> Result<Message, DecodeError> {
    let (&version, postcard_bytes) = body.split_first().ok_or(DecodeError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    // serde reports an out-of-range enum index only as a generic error, which postcard does
    // not pass on; so the message kind is checked here, where its position is known.
    if let Some(kind) = leading_varint(postcard_bytes)
        && kind >= Message::KINDS
    {
        return Err(DecodeError::UnknownVariant);
    }
    let (message, rest) =
        postcard::take_from_bytes::<Message>(postcard_bytes).map_err(map_postcard_error)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    message.validate()?;
    Ok(message)
}

/// The LEB128 varint postcard starts an enum with, if the bytes hold a complete one.
fn leading_varint(bytes: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(u32::try_from(value).unwrap_or(u32::MAX));
        }
    }
    None
}

fn map_postcard_error(e: postcard::Error) -> DecodeError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
        postcard::Error::DeserializeBadEnum => DecodeError::UnknownVariant,
        other => DecodeError::Malformed(other.to_string()),
    }
}

/// Reads the length field at the start of `bytes`, checked against `limit`.
/// `Ok(None)`: fewer than four bytes so far.
fn read_length(bytes: &[u8], limit: usize) -> Result<Option<usize>, DecodeError> {
    let Some(len_bytes) = bytes.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len_bytes) as usize;
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    if len > limit {
        return Err(DecodeError::Oversized { len, limit });
    }
    Ok(Some(len))
}

/// Decodes exactly one framed message that fills `bytes` (for example a whole
/// unidirectional stream carrying one video frame).
pub fn decode_exact(bytes: &[u8], limit: usize) -> Result<Message, DecodeError> {
    let len = read_length(bytes, limit)?.ok_or(DecodeError::Truncated)?;
    let body = &bytes[4..];
    if body.len() < len {
        return Err(DecodeError::Truncated);
    }
    if body.len() > len {
        return Err(DecodeError::TrailingBytes(body.len() - len));
    }
    decode_body(body)
}

/// An incremental decoder for a byte stream carrying framed messages.
///
/// Feed it what the transport delivers with [`Decoder::push`] and take messages with
/// [`Decoder::next_message`] until it returns `Ok(None)`. It holds at most one partial message
/// (never more than its limit plus the header) plus what was pushed since. After an error it
/// stays failed: the stream is out of sync and should be closed.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    limit: usize,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder refusing messages longer than `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Decoder {
        Decoder { buf: Vec::new(), start: 0, limit, failed: None }
    }

    /// A decoder for a control stream ([`MAX_CONTROL_MESSAGE_BYTES`]).
    #[must_use]
    pub fn control() -> Decoder {
        Decoder::new(MAX_CONTROL_MESSAGE_BYTES)
    }

    /// A decoder for a media stream ([`MAX_VIDEO_FRAME_BYTES`]).
    #[must_use]
    pub fn media() -> Decoder {
        Decoder::new(MAX_VIDEO_FRAME_BYTES)
    }

    /// Adds received bytes. Fails at once if a pending length field is over the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Check the header before buffering a body behind it, so an oversized announcement
        // never grows the buffer past the header.
        let mut header = [0u8; 4];
        let have = self.buf.len().min(4);
        header[..have].copy_from_slice(&self.buf[..have]);
        let need = 4 - have;
        header[have..have + need.min(bytes.len())].copy_from_slice(&bytes[..need.min(bytes.len())]);
        if have + bytes.len() >= 4 {
            self.check(read_length(&header, self.limit))?;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let length = read_length(&self.buf[self.start..], self.limit);
        let Some(len) = self.check(length)? else {
            return Ok(None);
        };
        if self.buffered() < 4 + len {
            return Ok(None);
        }
        let body_start = self.start + 4;
        let decoded = decode_body(&self.buf[body_start..body_start + len]);
        let message = self.check(decoded)?;
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(message))
    }

    /// Bytes received but not yet returned as messages.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn check<T>(&mut self, result: Result<T, DecodeError>) -> Result<T, DecodeError> {
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
}
