//! The frame codec as the relay runs it on a QUIC stream: bytes arrive in pieces, messages come
//! out or the stream fails; never a panic, never a buffer past the limit. What decodes encodes
//! again to a frame that decodes to the same message.
#![no_main]

use deskline_protocol::codec::{self, Decoder};
use deskline_protocol::limits::MAX_CONTROL_MESSAGE_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split where the first byte says, as the network would.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = Decoder::control();
    for piece in [&data[..split], &data[split..]] {
        if decoder.push(piece).is_err() {
            return;
        }
        assert!(decoder.buffered() <= data.len());
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    let frame = codec::encode(&message).expect("a decoded message encodes");
                    let again = codec::decode_exact(&frame, MAX_CONTROL_MESSAGE_BYTES).expect("its encoding decodes");
                    assert_eq!(again, message);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // The whole input as one frame, with the media limit too.
    let _ = codec::decode_exact(data, MAX_CONTROL_MESSAGE_BYTES);
    let _ = codec::decode_exact(data, deskline_protocol::limits::MAX_VIDEO_FRAME_BYTES);
});
