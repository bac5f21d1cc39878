//! Input on Windows with `SendInput`: keys as scan codes (layout-independent, see
//! [`super::scancode`]), text as Unicode characters (`KEYEVENTF_UNICODE`, any character
//! whatever the layout), the pointer absolute over the whole virtual desktop, buttons
//! (including back and forward) and both wheels. Everything pressed is remembered and released
//! the moment control ends.
//!
//! Not enigo: its Windows backend maps absolute positions onto the primary monitor only and
//! guesses the extended-key flag from a virtual key, which confuses the arrows with the keypad.

use super::scancode::{WinKey, win_key};
use crate::capture::DisplayOrigin;
use crate::sink::InputSink;
use anyhow::bail;
use deskline_protocol::{InputEvent, KeyCode, MouseButton, Press};
use std::collections::HashSet;
use windows::Win32::UI::Input::KeyboardAndMouse::{
    INPUT, INPUT_0, INPUT_KEYBOARD, INPUT_MOUSE, KEYBD_EVENT_FLAGS, KEYBDINPUT, KEYEVENTF_EXTENDEDKEY, KEYEVENTF_KEYUP,
    KEYEVENTF_SCANCODE, KEYEVENTF_UNICODE, MOUSE_EVENT_FLAGS, MOUSEEVENTF_ABSOLUTE, MOUSEEVENTF_HWHEEL, MOUSEEVENTF_LEFTDOWN,
    MOUSEEVENTF_LEFTUP, MOUSEEVENTF_MIDDLEDOWN, MOUSEEVENTF_MIDDLEUP, MOUSEEVENTF_MOVE, MOUSEEVENTF_RIGHTDOWN, MOUSEEVENTF_RIGHTUP,
    MAPVK_VSC_TO_VK_EX, MOUSEEVENTF_VIRTUALDESK, MOUSEEVENTF_WHEEL, MOUSEEVENTF_XDOWN, MOUSEEVENTF_XUP, MOUSEINPUT, MapVirtualKeyW,
    SendInput, VIRTUAL_KEY,
};
use windows::Win32::UI::WindowsAndMessaging::{
    GetSystemMetrics, SM_CXVIRTUALSCREEN, SM_CYVIRTUALSCREEN, SM_XVIRTUALSCREEN, SM_YVIRTUALSCREEN,
};

/// One wheel notch (`WHEEL_DELTA`).
const WHEEL_DELTA: i32 = 120;
/// `XBUTTON1` (back) and `XBUTTON2` (forward) in `mouseData`.
const XBUTTON1: u32 = 1;
const XBUTTON2: u32 = 2;

/// Injects input into the Windows desktop.
pub struct SendInputSink {
    origin: DisplayOrigin,
    held_keys: HashSet<KeyCode>,
    held_buttons: HashSet<MouseButton>,
}

impl SendInputSink {
    /// Pointer positions are in the shared display's pixels: `origin` (kept up to date by the
    /// capture) places them on the virtual desktop.
    ///
    /// # Errors
    /// None on Windows; the signature matches the other platforms'.
    pub fn new(origin: DisplayOrigin) -> anyhow::Result<SendInputSink> {
        Ok(SendInputSink { origin, held_keys: HashSet::new(), held_buttons: HashSet::new() })
    }
}

fn send(inputs: &[INPUT]) -> anyhow::Result<()> {
    let size = i32::try_from(std::mem::size_of::<INPUT>())?;
    // SAFETY: `inputs` are fully initialised INPUT structures of the size passed.
    #[allow(unsafe_code)]
    let sent = unsafe { SendInput(inputs, size) };
    if sent as usize != inputs.len() {
        // Blocked by UIPI (the window under the pointer runs elevated) or the secure desktop.
        bail!("Windows accepted {sent} of {} input events: {}", inputs.len(), std::io::Error::last_os_error());
    }
    Ok(())
}

fn mouse(flags: MOUSE_EVENT_FLAGS, data: u32, dx: i32, dy: i32) -> INPUT {
    INPUT {
        r#type: INPUT_MOUSE,
        Anonymous: INPUT_0 { mi: MOUSEINPUT { dx, dy, mouseData: data, dwFlags: flags, time: 0, dwExtraInfo: 0 } },
    }
}

fn keyboard(vk: u16, scan: u16, flags: KEYBD_EVENT_FLAGS) -> INPUT {
    INPUT {
        r#type: INPUT_KEYBOARD,
        Anonymous: INPUT_0 { ki: KEYBDINPUT { wVk: VIRTUAL_KEY(vk), wScan: scan, dwFlags: flags, time: 0, dwExtraInfo: 0 } },
    }
}

/// The `SendInput` event for a physical key going down or up.
#[must_use]
pub fn key_input(key: KeyCode, press: Press) -> INPUT {
    let up = if press == Press::Up { KEYEVENTF_KEYUP } else { KEYBD_EVENT_FLAGS(0) };
    match win_key(key) {
        WinKey::Scan { code, extended } => {
            let ext = if extended { KEYEVENTF_EXTENDEDKEY } else { KEYBD_EVENT_FLAGS(0) };
            // Windows ignores the virtual key when a scan code is given and derives it with
            // the end user's layout; Wine 8 does not, so it is set to what Windows would derive.
            let prefixed = if extended { 0xe000 | u32::from(code) } else { u32::from(code) };
            // SAFETY: a plain table lookup in the current keyboard layout.
            #[allow(unsafe_code)]
            let vk = unsafe { MapVirtualKeyW(prefixed, MAPVK_VSC_TO_VK_EX) };
            keyboard(u16::try_from(vk).unwrap_or(0), code, KEYEVENTF_SCANCODE | ext | up)
        }
        WinKey::Virtual(vk) => keyboard(vk, 0, up),
    }
}

/// A pixel of the virtual desktop as `SendInput`'s absolute coordinates (0..=65535 over the
/// virtual desktop `origin`, `size`): the middle of the pixel's range, so the rounding
/// Windows applies lands on it.
#[must_use]
pub fn normalise(pixel: i32, origin: i32, size: i32) -> i32 {
    let offset = i64::from(pixel.saturating_sub(origin).clamp(0, size.max(1) - 1));
    let n = ((2 * offset + 1) * 65536) / (2 * i64::from(size.max(1)));
    i32::try_from(n.clamp(0, 65535)).unwrap_or(65535)
}

fn button_flags(b: MouseButton, press: Press) -> (MOUSE_EVENT_FLAGS, u32) {
    let down = press == Press::Down;
    match b {
        MouseButton::Left => (if down { MOUSEEVENTF_LEFTDOWN } else { MOUSEEVENTF_LEFTUP }, 0),
        MouseButton::Right => (if down { MOUSEEVENTF_RIGHTDOWN } else { MOUSEEVENTF_RIGHTUP }, 0),
        MouseButton::Middle => (if down { MOUSEEVENTF_MIDDLEDOWN } else { MOUSEEVENTF_MIDDLEUP }, 0),
        MouseButton::Back => (if down { MOUSEEVENTF_XDOWN } else { MOUSEEVENTF_XUP }, XBUTTON1),
        MouseButton::Forward => (if down { MOUSEEVENTF_XDOWN } else { MOUSEEVENTF_XUP }, XBUTTON2),
    }
}

/// The events that type `text`: each UTF-16 unit as a Unicode "key" (so any character
/// arrives, whatever the layout), line breaks and tabs as the Enter and Tab keys.
fn text_inputs(text: &str) -> Vec<INPUT> {
    let mut inputs = Vec::new();
    for ch in text.chars() {
        let key = match ch {
            '\n' | '\r' => Some(KeyCode::Enter),
            '\t' => Some(KeyCode::Tab),
            _ => None,
        };
        if let Some(key) = key {
            inputs.extend([key_input(key, Press::Down), key_input(key, Press::Up)]);
            continue;
        }
        for unit in ch.encode_utf16(&mut [0; 2]) {
            inputs.push(keyboard(0, *unit, KEYEVENTF_UNICODE));
            inputs.push(keyboard(0, *unit, KEYEVENTF_UNICODE | KEYEVENTF_KEYUP));
        }
    }
    inputs
}

impl InputSink for SendInputSink {
    fn apply(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        match event {
            InputEvent::PointerMove { x, y } => {
                let (left, top) = self.origin.get();
                let (x, y) = (i32::try_from(*x)?.saturating_add(left), i32::try_from(*y)?.saturating_add(top));
                // SAFETY: plain queries of the virtual desktop's rectangle.
                #[allow(unsafe_code)]
                let (vx, vy, vw, vh) = unsafe {
                    (
                        GetSystemMetrics(SM_XVIRTUALSCREEN),
                        GetSystemMetrics(SM_YVIRTUALSCREEN),
                        GetSystemMetrics(SM_CXVIRTUALSCREEN),
                        GetSystemMetrics(SM_CYVIRTUALSCREEN),
                    )
                };
                let flags = MOUSEEVENTF_MOVE | MOUSEEVENTF_ABSOLUTE | MOUSEEVENTF_VIRTUALDESK;
                send(&[mouse(flags, 0, normalise(x, vx, vw), normalise(y, vy, vh))])?;
            }
            InputEvent::Button { button, press } => {
                let (flags, data) = button_flags(*button, *press);
                send(&[mouse(flags, data, 0, 0)])?;
                match press {
                    Press::Down => self.held_buttons.insert(*button),
                    Press::Up => self.held_buttons.remove(button),
                };
            }
            InputEvent::Wheel { dx, dy } => {
                // The protocol counts down and right as positive; Windows' vertical wheel
                // counts away from the user (up) as positive.
                if *dy != 0 {
                    send(&[mouse(MOUSEEVENTF_WHEEL, dy.saturating_mul(-WHEEL_DELTA) as u32, 0, 0)])?;
                }
                if *dx != 0 {
                    send(&[mouse(MOUSEEVENTF_HWHEEL, dx.saturating_mul(WHEEL_DELTA) as u32, 0, 0)])?;
                }
            }
            InputEvent::Key { code, press, .. } => {
                send(&[key_input(*code, *press)])?;
                match press {
                    Press::Down => self.held_keys.insert(*code),
                    Press::Up => self.held_keys.remove(code),
                };
            }
            InputEvent::Text { text } => send(&text_inputs(text))?,
        }
        Ok(())
    }

    fn release_all(&mut self) {
        for code in std::mem::take(&mut self.held_keys) {
            let _ = send(&[key_input(code, Press::Up)]);
        }
        for b in std::mem::take(&mut self.held_buttons) {
            let (flags, data) = button_flags(b, Press::Up);
            let _ = send(&[mouse(flags, data, 0, 0)]);
        }
    }
}
