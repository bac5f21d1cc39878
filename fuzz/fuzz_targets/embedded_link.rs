//! The link a downloaded support app reads from its own file's last bytes (which anyone can
//! append to): never a panic or an out-of-bounds read; a link written with `link_trailer`
//! reads back unchanged after any prefix.
#![no_main]

use deskline_protocol::embed::{embedded_link, link_trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = embedded_link(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(trailer) = link_trailer(text) {
            let mut file = data.to_vec();
            file.extend_from_slice(&trailer);
            assert_eq!(embedded_link(&file).ok().flatten(), Some(text));
        }
    }
});
