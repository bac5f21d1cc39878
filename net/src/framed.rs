//! Protocol messages over quinn streams.
//!
//! - The **control stream** (one bidirectional stream per connection, opened by the client)
//!   carries framed messages in order: [`MessageReader`] and [`MessageWriter`].
//! - **Video frames** each travel on their own unidirectional stream ([`send_frame`],
//!   [`read_frame`]), so a late or lost frame never holds up a newer one: the receiver reads
//!   streams in parallel. Their bytes go out oldest frame first ([`frame_priority`]).
//! - **Files** each travel on a bidirectional stream of their own, opened by the sender: one
//!   framed head ([`write_head`], [`read_head`]: a `FileData`), then the file's bytes; the
//!   receiver's `FileResult` comes back the other way. They go after every frame
//!   ([`FILE_PRIORITY`]), so a file never holds up the picture or the input.

use crate::NetError;
use bytes::Bytes;
use deskline_protocol::limits::{MAX_CONTROL_MESSAGE_BYTES, MAX_VIDEO_FRAME_BYTES};
use deskline_protocol::{Decoder, Message, VideoFrame, decode_exact, encode_into};

/// Largest chunk read from a stream at once: the control-message limit, so one read can hold
/// any whole control message and none makes the decoder buffer more.
const READ_CHUNK: usize = 64 * 1024;

/// Reads messages from a stream (the control stream), with the control-message size limit.
pub struct MessageReader {
    recv: quinn::RecvStream,
    decoder: Decoder,
}

impl MessageReader {
    /// A reader on a control stream.
    #[must_use]
    pub fn new(recv: quinn::RecvStream) -> MessageReader {
        MessageReader { recv, decoder: Decoder::control() }
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Message>, NetError> {
        loop {
            if let Some(message) = self.decoder.next_message()? {
                return Ok(Some(message));
            }
            match self.recv.read_chunk(READ_CHUNK, true).await? {
                Some(chunk) => self.decoder.push(&chunk.bytes)?,
                None if self.decoder.buffered() == 0 => return Ok(None),
                None => return Err(deskline_protocol::DecodeError::Truncated.into()),
            }
        }
    }
}

/// Writes messages to a stream (the control stream).
pub struct MessageWriter {
    send: quinn::SendStream,
    buf: Vec<u8>,
}

impl MessageWriter {
    /// A writer on a control stream.
    #[must_use]
    pub fn new(send: quinn::SendStream) -> MessageWriter {
        MessageWriter { send, buf: Vec::new() }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Message) -> Result<(), NetError> {
        self.buf.clear();
        encode_into(message, &mut self.buf)?;
        self.send.write_all(&self.buf).await?;
        Ok(())
    }

    /// Finishes the stream (the peer's reader then sees its end).
    pub fn finish(&mut self) -> Result<(), NetError> {
        self.send.finish()?;
        Ok(())
    }
}

/// Opens the control stream (client side) and sends the first message.
pub async fn open_control(connection: &quinn::Connection, hello: &Message) -> Result<(MessageWriter, MessageReader), NetError> {
    let (send, recv) = connection.open_bi().await?;
    // Control (consent answers, withdrawals, input) goes before any queued video.
    send.set_priority(CONTROL_PRIORITY)?;
    let mut writer = MessageWriter::new(send);
    writer.send(hello).await?;
    Ok((writer, MessageReader::new(recv)))
}

/// The control stream's priority: above every frame stream ([`frame_priority`], below this).
pub const CONTROL_PRIORITY: i32 = i32::MAX;

/// A file stream's priority: below every frame stream and the control stream.
pub const FILE_PRIORITY: i32 = i32::MIN;

/// Writes one framed message: the head of a file stream, or the receiver's last word on it.
pub async fn write_head(send: &mut quinn::SendStream, message: &Message) -> Result<(), NetError> {
    let mut buf = Vec::new();
    encode_into(message, &mut buf)?;
    send.write_all(&buf).await?;
    Ok(())
}

/// Reads exactly one framed message (control-sized) from a stream, and not a byte more: what
/// follows it is the stream's payload.
pub async fn read_head(recv: &mut quinn::RecvStream) -> Result<Message, NetError> {
    use deskline_protocol::DecodeError;
    let exact = |e: quinn::ReadExactError| match e {
        quinn::ReadExactError::FinishedEarly(_) => NetError::Decode(DecodeError::Truncated),
        quinn::ReadExactError::ReadError(e) => NetError::Read(e),
    };
    let mut head = [0u8; 4];
    recv.read_exact(&mut head).await.map_err(exact)?;
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_CONTROL_MESSAGE_BYTES {
        return Err(DecodeError::Oversized { len, limit: MAX_CONTROL_MESSAGE_BYTES }.into());
    }
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&head);
    recv.read_exact(&mut frame[4..]).await.map_err(exact)?;
    Ok(decode_exact(&frame, MAX_CONTROL_MESSAGE_BYTES)?)
}

/// Accepts the control stream (server side).
pub async fn accept_control(connection: &quinn::Connection) -> Result<(MessageWriter, MessageReader), NetError> {
    let (send, recv) = connection.accept_bi().await?;
    send.set_priority(CONTROL_PRIORITY)?;
    Ok((MessageWriter::new(send), MessageReader::new(recv)))
}

/// Encodes a video frame as it travels (header and all), so it can be forwarded as bytes.
pub fn encode_frame(frame: VideoFrame) -> Result<Bytes, NetError> {
    let mut buf = Vec::with_capacity(frame.data.len() + 64);
    encode_into(&Message::VideoFrame(frame), &mut buf)?;
    Ok(Bytes::from(buf))
}

/// A frame stream's priority from the frame's sequence number: older frames first. A P-frame
/// decodes only after the frames before it, and a large keyframe must not be overtaken by the
/// small frames that follow it — measured under load when newer frames went first: viewers got
/// the P-frames after a keyframe before the keyframe itself, and the relay skipped a viewer
/// waiting for that keyframe over them. Numbers wrap every 2^30 frames (years at 60 fps of
/// sequence numbers that start from the clock: a moment of disorder at the wrap).
#[must_use]
pub fn frame_priority(seq: u64) -> i32 {
    -i32::try_from(seq % (1 << 30)).unwrap_or(0)
}

/// Sends one encoded video frame on a new unidirectional stream. Higher `priority` goes first
/// when several frames are in flight ([`frame_priority`]).
pub async fn send_frame(connection: &quinn::Connection, encoded: &Bytes, priority: i32) -> Result<(), NetError> {
    let mut stream = connection.open_uni().await?;
    stream.set_priority(priority)?;
    stream.write_chunk(encoded.clone()).await?;
    stream.finish()?;
    Ok(())
}

/// Reads a whole frame stream: the encoded bytes (to forward as they are) and the decoded
/// frame. Anything but one valid video frame is an error.
pub async fn read_frame(mut recv: quinn::RecvStream) -> Result<(Bytes, VideoFrame), NetError> {
    let bytes = recv.read_to_end(MAX_VIDEO_FRAME_BYTES + deskline_protocol::limits::FRAME_HEADER_BYTES).await?;
    match decode_exact(&bytes, MAX_VIDEO_FRAME_BYTES)? {
        Message::VideoFrame(frame) => Ok((Bytes::from(bytes), frame)),
        other => Err(NetError::Unexpected(format!("{other:?} on a frame stream"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_frames_go_first_and_control_before_all() {
        let seq = 1_764_000_000_000_u64; // sequence numbers start from the clock, in ms
        assert!(frame_priority(seq) > frame_priority(seq + 1));
        assert!(frame_priority(seq + 1) > frame_priority(seq + 1_000));
        assert!((0..5).map(|n| frame_priority(seq + n)).all(|p| p < CONTROL_PRIORITY));
    }
}
