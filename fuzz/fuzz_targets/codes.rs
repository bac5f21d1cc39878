//! What people type or paste: links, link tokens, PINs, key names. Never a panic; what parses
//! prints back to text that parses to the same value.
#![no_main]

use deskline_protocol::{KeyCode, LinkToken, Pin, SessionLink};
use libfuzzer_sys::fuzz_target;
use std::str::FromStr as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pin) = Pin::from_str(text) {
        assert_eq!(Pin::from_str(&pin.to_string()).ok(), Some(pin));
    }
    if let Ok(token) = LinkToken::from_str(text) {
        assert!(LinkToken::from_str(&token.to_text()).ok() == Some(token));
    }
    if let Ok(link) = SessionLink::from_str(text) {
        let mut fragment = Vec::new();
        fragment.extend(link.quic.as_ref().map(|q| format!("quic={q}")));
        fragment.extend(link.sha256.as_ref().map(|s| format!("sha256={s}")));
        let printed = format!("https://relay.example/s/{}#{}", link.token.to_text(), fragment.join("&"));
        assert!(SessionLink::from_str(&printed).ok() == Some(link), "{printed}");
    }
    let _ = KeyCode::from_str(text);
});
