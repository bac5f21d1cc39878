//! Physical keys to the PC keyboard's set-1 scan codes, which `SendInput` takes with
//! `KEYEVENTF_SCANCODE`: injecting positions, not characters, keeps keys layout-independent
//! (the end user's own layout turns the position into a character, as with a real keyboard).
//!
//! Keys that send an `E0` prefix on a real keyboard carry the extended flag
//! (`KEYEVENTF_EXTENDEDKEY`); without it Windows reads the arrow keys as the numeric keypad's.
//! Pause sends `E1 1D 45`, which a scan code cannot express: it goes as its virtual key.

use deskline_protocol::KeyCode;

/// How Windows is told about one physical key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WinKey {
    /// A set-1 scan code, with the `E0` (extended) prefix or without.
    Scan {
        /// The scan code (make code).
        code: u16,
        /// Sent with `KEYEVENTF_EXTENDEDKEY`.
        extended: bool,
    },
    /// A virtual-key code (only Pause).
    Virtual(u16),
}

/// `VK_PAUSE`.
const VK_PAUSE: u16 = 0x13;

const fn plain(code: u16) -> WinKey {
    WinKey::Scan { code, extended: false }
}

const fn extended(code: u16) -> WinKey {
    WinKey::Scan { code, extended: true }
}

/// The scan code of a physical key.
#[must_use]
pub const fn win_key(key: KeyCode) -> WinKey {
    use KeyCode as K;
    match key {
        K::Escape => plain(0x01),
        K::Digit1 => plain(0x02),
        K::Digit2 => plain(0x03),
        K::Digit3 => plain(0x04),
        K::Digit4 => plain(0x05),
        K::Digit5 => plain(0x06),
        K::Digit6 => plain(0x07),
        K::Digit7 => plain(0x08),
        K::Digit8 => plain(0x09),
        K::Digit9 => plain(0x0a),
        K::Digit0 => plain(0x0b),
        K::Minus => plain(0x0c),
        K::Equal => plain(0x0d),
        K::Backspace => plain(0x0e),
        K::Tab => plain(0x0f),
        K::KeyQ => plain(0x10),
        K::KeyW => plain(0x11),
        K::KeyE => plain(0x12),
        K::KeyR => plain(0x13),
        K::KeyT => plain(0x14),
        K::KeyY => plain(0x15),
        K::KeyU => plain(0x16),
        K::KeyI => plain(0x17),
        K::KeyO => plain(0x18),
        K::KeyP => plain(0x19),
        K::BracketLeft => plain(0x1a),
        K::BracketRight => plain(0x1b),
        K::Enter => plain(0x1c),
        K::ControlLeft => plain(0x1d),
        K::KeyA => plain(0x1e),
        K::KeyS => plain(0x1f),
        K::KeyD => plain(0x20),
        K::KeyF => plain(0x21),
        K::KeyG => plain(0x22),
        K::KeyH => plain(0x23),
        K::KeyJ => plain(0x24),
        K::KeyK => plain(0x25),
        K::KeyL => plain(0x26),
        K::Semicolon => plain(0x27),
        K::Quote => plain(0x28),
        K::Backquote => plain(0x29),
        K::ShiftLeft => plain(0x2a),
        K::Backslash => plain(0x2b),
        K::KeyZ => plain(0x2c),
        K::KeyX => plain(0x2d),
        K::KeyC => plain(0x2e),
        K::KeyV => plain(0x2f),
        K::KeyB => plain(0x30),
        K::KeyN => plain(0x31),
        K::KeyM => plain(0x32),
        K::Comma => plain(0x33),
        K::Period => plain(0x34),
        K::Slash => plain(0x35),
        K::ShiftRight => plain(0x36),
        K::NumpadMultiply => plain(0x37),
        K::AltLeft => plain(0x38),
        K::Space => plain(0x39),
        K::CapsLock => plain(0x3a),
        K::F1 => plain(0x3b),
        K::F2 => plain(0x3c),
        K::F3 => plain(0x3d),
        K::F4 => plain(0x3e),
        K::F5 => plain(0x3f),
        K::F6 => plain(0x40),
        K::F7 => plain(0x41),
        K::F8 => plain(0x42),
        K::F9 => plain(0x43),
        K::F10 => plain(0x44),
        // Num Lock is 0x45 with the extended flag as far as SendInput is concerned (the plain
        // 0x45 is Pause's tail); Microsoft's list of extended keys names it.
        K::NumLock => extended(0x45),
        K::ScrollLock => plain(0x46),
        K::Numpad7 => plain(0x47),
        K::Numpad8 => plain(0x48),
        K::Numpad9 => plain(0x49),
        K::NumpadSubtract => plain(0x4a),
        K::Numpad4 => plain(0x4b),
        K::Numpad5 => plain(0x4c),
        K::Numpad6 => plain(0x4d),
        K::NumpadAdd => plain(0x4e),
        K::Numpad1 => plain(0x4f),
        K::Numpad2 => plain(0x50),
        K::Numpad3 => plain(0x51),
        K::Numpad0 => plain(0x52),
        K::NumpadDecimal => plain(0x53),
        K::IntlBackslash => plain(0x56),
        K::F11 => plain(0x57),
        K::F12 => plain(0x58),
        K::NumpadEnter => extended(0x1c),
        K::ControlRight => extended(0x1d),
        K::NumpadDivide => extended(0x35),
        K::PrintScreen => extended(0x37),
        K::AltRight => extended(0x38),
        K::Home => extended(0x47),
        K::ArrowUp => extended(0x48),
        K::PageUp => extended(0x49),
        K::ArrowLeft => extended(0x4b),
        K::ArrowRight => extended(0x4d),
        K::End => extended(0x4f),
        K::ArrowDown => extended(0x50),
        K::PageDown => extended(0x51),
        K::Insert => extended(0x52),
        K::Delete => extended(0x53),
        K::MetaLeft => extended(0x5b),
        K::MetaRight => extended(0x5c),
        K::ContextMenu => extended(0x5d),
        K::Pause => WinKey::Virtual(VK_PAUSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_own_scan_code() {
        let mut seen = std::collections::HashSet::new();
        for &key in KeyCode::ALL {
            assert!(seen.insert(win_key(key)), "{key} shares {:?}", win_key(key));
        }
    }

    #[test]
    fn keys_match_a_pc_keyboard() {
        // Values from Microsoft's keyboard scan code table (USB HID to PS/2 set 1).
        assert_eq!(win_key(KeyCode::KeyA), plain(0x1e));
        assert_eq!(win_key(KeyCode::Enter), plain(0x1c));
        assert_eq!(win_key(KeyCode::NumpadEnter), extended(0x1c), "the keypad's Enter is Enter with E0");
        assert_eq!(win_key(KeyCode::ArrowUp), extended(0x48), "arrows are extended, or they would be the keypad's 8");
        assert_eq!(win_key(KeyCode::Numpad8), plain(0x48));
        assert_eq!(win_key(KeyCode::AltRight), extended(0x38), "AltGr is the extended Alt");
        assert_eq!(win_key(KeyCode::MetaLeft), extended(0x5b));
        assert_eq!(win_key(KeyCode::IntlBackslash), plain(0x56), "the ISO key between Shift and Z");
        assert_eq!(win_key(KeyCode::Pause), WinKey::Virtual(0x13));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn plain_codes_agree_with_linux_for_the_main_block() {
        // Linux's evdev numbers were taken from set 1: the two maps must agree below 0x59
        // for every key without the E0 prefix.
        for &key in KeyCode::ALL {
            if let WinKey::Scan { code, extended: false } = win_key(key) {
                assert_eq!(code, crate::platform::x11::keymap::evdev_code(key), "{key}");
            }
        }
    }
}
