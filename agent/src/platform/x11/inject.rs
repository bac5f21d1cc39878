//! Input injection with `enigo` (XTEST on X11): absolute pointer, buttons, wheel, physical
//! keys by keycode, and text (on X11 typed with the end user's layout, see [`super::typing`]).
//! Everything pressed is remembered so it can all be released the moment control ends.

use super::keymap::x11_keycode;
use crate::capture::DisplayOrigin;
use crate::sink::InputSink;
use deskline_protocol::{InputEvent, KeyCode, MouseButton, Press};
use enigo::{Axis, Button, Coordinate, Direction, Enigo, Keyboard as _, Mouse as _, Settings};
use std::collections::HashSet;

/// Injects input into the local desktop.
pub struct EnigoSink {
    enigo: Enigo,
    origin: DisplayOrigin,
    held_keys: HashSet<KeyCode>,
    held_buttons: HashSet<MouseButton>,
    /// Reads the keyboard map for typing text (connected on first use).
    layout: Option<super::typing::x11::LayoutReader>,
}

impl EnigoSink {
    /// Connects to the desktop's input system. Pointer positions are in the shared display's
    /// pixels: `origin` (kept up to date by the capture) places them on the desktop.
    pub fn new(origin: DisplayOrigin) -> anyhow::Result<EnigoSink> {
        let enigo = Enigo::new(&Settings::default()).map_err(|e| anyhow::anyhow!("cannot inject input: {e}"))?;
        Ok(EnigoSink {
            enigo,
            origin,
            held_keys: HashSet::new(),
            held_buttons: HashSet::new(),
            layout: None,
        })
    }

    /// Types `text` key by key on the current layout; what it lacks goes to enigo's rebinding.
    fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        use super::typing::x11::LayoutReader;
        let reader = match &mut self.layout {
            Some(reader) => reader,
            None => self.layout.insert(LayoutReader::connect().map_err(|e| anyhow::anyhow!("cannot type: {e}"))?),
        };
        let layout = reader.read().map_err(|e| anyhow::anyhow!(e))?;
        for ch in text.chars() {
            let Some(stroke) = layout.stroke(ch) else {
                self.enigo.text(ch.encode_utf8(&mut [0; 4]))?;
                continue;
            };
            for &m in &stroke.hold {
                self.enigo.raw(m.into(), Direction::Press)?;
            }
            let typed = self.enigo.raw(stroke.keycode.into(), Direction::Click);
            for &m in stroke.hold.iter().rev() {
                self.enigo.raw(m.into(), Direction::Release)?;
            }
            typed?;
        }
        Ok(())
    }
}

fn button(b: MouseButton) -> Button {
    match b {
        MouseButton::Left => Button::Left,
        MouseButton::Right => Button::Right,
        MouseButton::Middle => Button::Middle,
        MouseButton::Back => Button::Back,
        MouseButton::Forward => Button::Forward,
    }
}

fn direction(p: Press) -> Direction {
    match p {
        Press::Down => Direction::Press,
        Press::Up => Direction::Release,
    }
}

impl InputSink for EnigoSink {
    fn apply(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        match event {
            InputEvent::PointerMove { x, y } => {
                let (left, top) = self.origin.get();
                let (x, y) = (i32::try_from(*x)?.saturating_add(left), i32::try_from(*y)?.saturating_add(top));
                self.enigo.move_mouse(x, y, Coordinate::Abs)?;
            }
            InputEvent::Button { button: b, press } => {
                self.enigo.button(button(*b), direction(*press))?;
                match press {
                    Press::Down => self.held_buttons.insert(*b),
                    Press::Up => self.held_buttons.remove(b),
                };
            }
            InputEvent::Wheel { dx, dy } => {
                if *dy != 0 {
                    self.enigo.scroll(*dy, Axis::Vertical)?;
                }
                if *dx != 0 {
                    self.enigo.scroll(*dx, Axis::Horizontal)?;
                }
            }
            InputEvent::Key { code, press, .. } => {
                self.enigo.raw(x11_keycode(*code), direction(*press))?;
                match press {
                    Press::Down => self.held_keys.insert(*code),
                    Press::Up => self.held_keys.remove(code),
                };
            }
            InputEvent::Text { text } => self.type_text(text)?,
        }
        Ok(())
    }

    fn release_all(&mut self) {
        for code in std::mem::take(&mut self.held_keys) {
            let _ = self.enigo.raw(x11_keycode(code), Direction::Release);
        }
        for b in std::mem::take(&mut self.held_buttons) {
            let _ = self.enigo.button(button(b), Direction::Release);
        }
    }
}
