//! Typing text on X11 with the end user's own keyboard layout.
//!
//! enigo's `text()` finds a character only on a key's base level (its `keysym_to_keycode`
//! searches column 0, see the TODO there); anything else ("!" or "A" on a US layout, "@" on a
//! German one) it types by rebinding a spare keycode with `ChangeKeyboardMapping`. Clients do
//! not reliably pick that rebinding up: in clean CI runs `xev` read such keys as `NoSymbol`.
//! So before typing, the app reads the current keyboard map and types every character the
//! layout has the way a person would: the key, with Shift and/or the level-3 key (AltGr) held
//! as its level needs, minding Caps Lock. Only characters the layout lacks are left to enigo's
//! rebinding.
//!
//! The map is read again for every text message (three round trips), so a layout switched
//! while sharing is followed.

/// `Shift_L`.
const SHIFT_L: u32 = 0xffe1;
/// `ISO_Level3_Shift` (AltGr on most layouts).
const LEVEL3_SHIFT: u32 = 0xfe03;

/// One key press that produces a character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stroke {
    /// The X11 keycode.
    pub keycode: u8,
    /// Modifier keycodes to hold while pressing it (Shift, the level-3 key), in press order.
    pub hold: Vec<u8>,
}

/// A snapshot of the X server's core keyboard map (`GetKeyboardMapping`), which XKB keeps
/// in step with the active layout: for each keycode, columns 0–1 are group 1's levels 1–2,
/// columns 2–3 group 2's, and columns 4–5 group 1's levels 3–4.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The first keycode described.
    pub min_keycode: u8,
    /// Keysyms per keycode (columns).
    pub per_keycode: usize,
    /// `per_keycode` keysyms for each keycode from `min_keycode` on.
    pub keysyms: Vec<u32>,
    /// Caps Lock is on.
    pub caps_lock: bool,
}

impl Layout {
    fn keycodes(&self) -> impl Iterator<Item = (u8, &[u32])> {
        let per = self.per_keycode.max(1);
        (self.min_keycode..=u8::MAX).zip(self.keysyms.chunks(per))
    }

    /// The keycode whose base level is `keysym`.
    fn base_key(&self, keysym: u32) -> Option<u8> {
        self.keycodes().find(|(_, syms)| syms.first() == Some(&keysym)).map(|(code, _)| code)
    }

    /// How to type `ch` on this layout, or `None` when no key of group 1 produces it (or the
    /// layout has no key for the modifier its level needs).
    #[must_use]
    pub fn stroke(&self, ch: char) -> Option<Stroke> {
        let keysym = match ch {
            '\n' | '\r' => 0xff0d, // Return
            '\t' => 0xff09,        // Tab
            _ => xkeysym::Keysym::from_char(ch).raw(),
        };
        if keysym == 0 {
            return None;
        }
        // Base and shifted levels first, then AltGr's: the stroke a person would use.
        for (column, shift, level3) in [(0, false, false), (1, true, false), (4, false, true), (5, true, true)] {
            for (keycode, syms) in self.keycodes() {
                if syms.get(column) != Some(&keysym) {
                    continue;
                }
                // Caps Lock turns a letter key's first level into its second and back.
                let flips = self.caps_lock && column < 2 && is_letter_key(syms);
                let mut hold = Vec::new();
                if shift != flips {
                    hold.push(self.base_key(SHIFT_L)?);
                }
                if level3 {
                    hold.push(self.base_key(LEVEL3_SHIFT)?);
                }
                return Some(Stroke { keycode, hold });
            }
        }
        None
    }

}

/// A key whose two first levels are a letter in lower and upper case (what Caps Lock acts on).
fn is_letter_key(syms: &[u32]) -> bool {
    let char_of = |i: usize| syms.get(i).and_then(|&s| xkeysym::Keysym::new(s).key_char());
    match (char_of(0), char_of(1)) {
        (Some(lower), Some(upper)) => lower.is_lowercase() && lower.to_uppercase().eq(std::iter::once(upper)),
        _ => false,
    }
}

/// Reads the current layout from the X server.
pub mod x11 {
    use super::Layout;
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, KeyButMask};
    use x11rb::rust_connection::RustConnection;

    /// A connection that reads the keyboard map when text is to be typed.
    pub struct LayoutReader {
        conn: RustConnection,
        root: u32,
    }

    impl LayoutReader {
        /// Connects to the X server of `$DISPLAY`.
        ///
        /// # Errors
        /// No X server.
        pub fn connect() -> Result<LayoutReader, String> {
            let (conn, screen) = x11rb::connect(None).map_err(|e| e.to_string())?;
            let root = conn.setup().roots[screen].root;
            Ok(LayoutReader { conn, root })
        }

        /// The keyboard map and Caps Lock as they are now.
        ///
        /// # Errors
        /// The X server went away.
        pub fn read(&self) -> Result<Layout, String> {
            let setup = self.conn.setup();
            let (min, max) = (setup.min_keycode, setup.max_keycode);
            let fail = |e: &dyn std::fmt::Display| format!("reading the keyboard map: {e}");
            let map = self.conn.get_keyboard_mapping(min, max - min + 1).map_err(|e| fail(&e))?;
            let pointer = self.conn.query_pointer(self.root).map_err(|e| fail(&e))?;
            let map = map.reply().map_err(|e| fail(&e))?;
            let pointer = pointer.reply().map_err(|e| fail(&e))?;
            Ok(Layout {
                min_keycode: min,
                per_keycode: usize::from(map.keysyms_per_keycode),
                keysyms: map.keysyms,
                caps_lock: pointer.mask.contains(KeyButMask::LOCK),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A German-like layout of five keys, six columns each (as XKB fills the core map).
    fn layout(caps_lock: bool) -> Layout {
        let q = [0x71, 0x51, 0x71, 0x51, 0x40, 0x7d9]; // q Q q Q at Greek_OMEGA
        let one = [0x31, 0x21, 0x31, 0x21, 0xb9, 0xa1]; // 1 ! 1 ! onesuperior exclamdown
        let u = [0xfc, 0xdc, 0xfc, 0xdc, 0, 0]; // udiaeresis Udiaeresis
        let shift = [SHIFT_L, 0, SHIFT_L, 0, 0, 0];
        let altgr = [LEVEL3_SHIFT, 0, LEVEL3_SHIFT, 0, 0, 0];
        let keysyms = [q, one, u, shift, altgr].concat();
        Layout { min_keycode: 24, per_keycode: 6, keysyms, caps_lock }
    }

    const SHIFT: u8 = 27;
    const ALTGR: u8 = 28;

    fn stroke(keycode: u8, hold: &[u8]) -> Option<Stroke> {
        Some(Stroke { keycode, hold: hold.to_vec() })
    }

    #[test]
    fn each_level_takes_its_modifiers() {
        let l = layout(false);
        assert_eq!(l.stroke('q'), stroke(24, &[]));
        assert_eq!(l.stroke('Q'), stroke(24, &[SHIFT]));
        assert_eq!(l.stroke('!'), stroke(25, &[SHIFT]));
        assert_eq!(l.stroke('@'), stroke(24, &[ALTGR]));
        assert_eq!(l.stroke('Ω'), stroke(24, &[SHIFT, ALTGR]));
        assert_eq!(l.stroke('ü'), stroke(26, &[]));
    }

    #[test]
    fn caps_lock_flips_letters_only() {
        let l = layout(true);
        assert_eq!(l.stroke('q'), stroke(24, &[SHIFT]));
        assert_eq!(l.stroke('Q'), stroke(24, &[]));
        assert_eq!(l.stroke('Ü'), stroke(26, &[]));
        assert_eq!(l.stroke('1'), stroke(25, &[]));
        assert_eq!(l.stroke('!'), stroke(25, &[SHIFT]));
    }

    #[test]
    fn what_the_layout_lacks_is_not_guessed() {
        let mut l = layout(false);
        assert_eq!(l.stroke('é'), None);
        assert_eq!(l.stroke('\n'), None, "no Return key in this small map");
        // Without a level-3 key, AltGr's characters cannot be typed by keys.
        l.keysyms.truncate(6 * 4);
        assert_eq!(l.stroke('!'), stroke(25, &[SHIFT]));
        assert_eq!(l.stroke('@'), None);
        // Without a Shift key, neither can the shifted level.
        l.keysyms.truncate(6 * 3);
        assert_eq!(l.stroke('!'), None);
        assert_eq!(l.stroke('1'), stroke(25, &[]));
    }
}
