//! Protocol messages over quinn streams.
//!
//! - The **control stream** (one bidirectional stream per connection, opened by the client)
//!   carries framed messages in order: [`MessageReader`] and [`MessageWriter`].
//! - **Video frames** travel one group of pictures to a unidirectional stream ([`FrameSender`],
//!   [`FrameReader`]): a keyframe and the P-frames that follow it, each a framed message. A
//!   P-frame decodes only after the frames before it, so a late frame in the group holds up
//!   nothing that could be shown without it; the next keyframe starts a new stream, which a
//!   late older group never holds up (the receiver reads streams in parallel; bytes go out
//!   oldest first, [`frame_priority`]). A group cut short — frames skipped because the network
//!   fell behind — is reset: its unsent rest is stale. One stream per group instead of one per
//!   frame saves each frame a stream's opening, acceptance, credit and end (issue 18). A reader
//!   also takes a stream of one frame, as senders before groups wrote them.
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

/// The error code of a frame stream reset because frames of its group were skipped.
const GROUP_CUT_SHORT: u32 = 1;

/// Sends video frames on a connection, a group of pictures to a stream (see the module's
/// documentation).
pub struct FrameSender {
    connection: quinn::Connection,
    /// The current group's stream, and the sequence number the next frame of the group has.
    group: Option<(quinn::SendStream, u64)>,
    /// Frames of the current group were skipped by the caller ([`FrameSender::cut_short`]).
    cut: bool,
}

impl FrameSender {
    /// A sender on `connection`.
    #[must_use]
    pub fn new(connection: quinn::Connection) -> FrameSender {
        FrameSender { connection, group: None, cut: false }
    }

    /// Sends one encoded frame ([`encode_frame`]) with sequence number `seq`. A keyframe, or a
    /// frame that does not follow the last one sent (frames were skipped), starts a new
    /// stream; the previous one is finished, or reset when frames were skipped.
    pub async fn send(&mut self, encoded: &Bytes, seq: u64, keyframe: bool) -> Result<(), NetError> {
        let follows = self.group.as_ref().is_some_and(|(_, next)| *next == seq);
        if keyframe || !follows {
            if let Some((mut old, _)) = self.group.take() {
                // A stream already gone (the peer stopped it) needs nothing more.
                let _ = if follows && !self.cut { old.finish() } else { old.reset(GROUP_CUT_SHORT.into()) };
            }
            self.cut = false;
            let stream = self.connection.open_uni().await?;
            stream.set_priority(frame_priority(seq))?;
            self.group = Some((stream, seq));
        }
        let Some((stream, next)) = self.group.as_mut() else { unreachable!("a group was opened above") };
        *next = seq.wrapping_add(1);
        let written = stream.write_chunk(encoded.clone()).await;
        if written.is_err() {
            // The next frame starts a new group rather than write to a broken stream.
            self.group = None;
        }
        Ok(written?)
    }

    /// Frames were skipped (not sent) since the last one: the current group ends at the next
    /// frame sent — a keyframe, which a skip calls for — and its unsent rest is dropped.
    pub fn cut_short(&mut self) {
        self.cut = true;
    }
}

/// Reads the frames of one frame stream in order.
pub struct FrameReader {
    recv: quinn::RecvStream,
}

impl FrameReader {
    /// A reader on a frame stream the peer opened.
    #[must_use]
    pub fn new(recv: quinn::RecvStream) -> FrameReader {
        FrameReader { recv }
    }

    /// The next frame: its bytes as they travelled (to forward as they are) and decoded.
    /// `Ok(None)` at the stream's end — finished, or reset by the sender (its rest was stale).
    /// Anything but whole, valid video frames is an error.
    pub async fn next(&mut self) -> Result<Option<(Bytes, VideoFrame)>, NetError> {
        use deskline_protocol::DecodeError;
        let mut head = [0u8; 4];
        match self.recv.read_exact(&mut head).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0) | quinn::ReadExactError::ReadError(quinn::ReadError::Reset(_))) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(DecodeError::Truncated.into()),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(head) as usize;
        if len > MAX_VIDEO_FRAME_BYTES {
            return Err(DecodeError::Oversized { len, limit: MAX_VIDEO_FRAME_BYTES }.into());
        }
        let mut frame = vec![0u8; 4 + len];
        frame[..4].copy_from_slice(&head);
        match self.recv.read_exact(&mut frame[4..]).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::ReadError(quinn::ReadError::Reset(_))) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(DecodeError::Truncated.into()),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        match decode_exact(&frame, MAX_VIDEO_FRAME_BYTES)? {
            Message::VideoFrame(decoded) => Ok(Some((Bytes::from(frame), decoded))),
            other => Err(NetError::Unexpected(format!("{other:?} on a frame stream"))),
        }
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
