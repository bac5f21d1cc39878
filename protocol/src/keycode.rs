//! Layout-independent key codes.
//!
//! The names are the W3C UI Events `KeyboardEvent.code` values: they name a physical key
//! position (US layout names), not the character it types, so a technician on an AZERTY
//! keyboard pressing the key labelled "A" sends `KeyQ` and the end user's own layout decides
//! what it types. Browsers hand these names to the web console directly. Characters that must
//! arrive as themselves travel as text ([`crate::InputEvent::Text`] or a key's `text`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! key_codes {
    ($($name:ident),+ $(,)?) => {
        /// A physical key, named by its W3C `KeyboardEvent.code` value.
        ///
        /// New keys are only ever appended: the wire format is the variant's position.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        #[allow(missing_docs)] // the W3C name is the documentation
        pub enum KeyCode {
            $($name),+
        }

        impl KeyCode {
            /// Every key code, in wire order.
            pub const ALL: &'static [KeyCode] = &[$(KeyCode::$name),+];

            /// The W3C `KeyboardEvent.code` name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(KeyCode::$name => stringify!($name)),+
                }
            }
        }

        impl FromStr for KeyCode {
            type Err = UnknownKeyCode;

            fn from_str(s: &str) -> Result<KeyCode, UnknownKeyCode> {
                match s {
                    $(stringify!($name) => Ok(KeyCode::$name),)+
                    _ => Err(UnknownKeyCode(s.chars().take(32).collect())),
                }
            }
        }
    };
}

key_codes! {
    KeyA, KeyB, KeyC, KeyD, KeyE, KeyF, KeyG, KeyH, KeyI, KeyJ, KeyK, KeyL, KeyM,
    KeyN, KeyO, KeyP, KeyQ, KeyR, KeyS, KeyT, KeyU, KeyV, KeyW, KeyX, KeyY, KeyZ,
    Digit0, Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9,
    F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12,
    Enter, Escape, Backspace, Tab, Space,
    Minus, Equal, BracketLeft, BracketRight, Backslash, Semicolon, Quote, Backquote,
    Comma, Period, Slash, IntlBackslash,
    CapsLock, PrintScreen, ScrollLock, Pause, ContextMenu,
    Insert, Delete, Home, End, PageUp, PageDown,
    ArrowLeft, ArrowRight, ArrowUp, ArrowDown,
    NumLock, NumpadDivide, NumpadMultiply, NumpadSubtract, NumpadAdd, NumpadEnter, NumpadDecimal,
    Numpad0, Numpad1, Numpad2, Numpad3, Numpad4, Numpad5, Numpad6, Numpad7, Numpad8, Numpad9,
    ShiftLeft, ShiftRight, ControlLeft, ControlRight, AltLeft, AltRight, MetaLeft, MetaRight,
}

/// A key name that is not a known W3C `KeyboardEvent.code` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key code {0:?} (expected a KeyboardEvent.code name such as KeyA, Enter, ArrowLeft)")]
pub struct UnknownKeyCode(pub String);

impl fmt::Display for KeyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KeyCode {
    /// Is this a modifier key (Shift, Control, Alt, Meta)? Held modifiers are released first
    /// when control ends, so nothing stays pressed on the end user's machine.
    #[must_use]
    pub const fn is_modifier(self) -> bool {
        matches!(
            self,
            KeyCode::ShiftLeft
                | KeyCode::ShiftRight
                | KeyCode::ControlLeft
                | KeyCode::ControlRight
                | KeyCode::AltLeft
                | KeyCode::AltRight
                | KeyCode::MetaLeft
                | KeyCode::MetaRight
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &key in KeyCode::ALL {
            assert!(seen.insert(key.as_str()));
            assert_eq!(key.as_str().parse::<KeyCode>(), Ok(key));
        }
        assert!(KeyCode::ALL.len() > 100);
        assert_eq!("Enter".parse::<KeyCode>(), Ok(KeyCode::Enter));
        assert!("enter".parse::<KeyCode>().is_err(), "names are case-sensitive, as in browsers");
        assert!(KeyCode::AltLeft.is_modifier() && !KeyCode::KeyA.is_modifier());
    }
}
