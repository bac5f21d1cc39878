//! A browser's data-channel message, as the relay reads it: JSON to a protocol message, then
//! the same validation the binary codec applies. Never a panic; what passes encodes.
#![no_main]

use deskline_protocol::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > deskline_protocol::limits::MAX_CONTROL_MESSAGE_BYTES {
        return;
    }
    if let Ok(message) = serde_json::from_slice::<Message>(data) {
        if message.validate().is_ok() {
            deskline_protocol::codec::encode(&message).expect("a valid message encodes");
        }
    }
});
