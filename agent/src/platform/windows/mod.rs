//! Windows: capture with DXGI Desktop Duplication where Windows offers it, GDI everywhere else
//! ([`gdi`]), input with `SendInput` ([`input`]), keys as set-1
//! scan codes ([`scancode`]). The app is per-monitor DPI aware, so every position is in
//! physical pixels, and its own windows are kept out of the captured picture.
//!
//! [`scancode`] is plain data and compiles everywhere, so its tests run on every CI machine.

pub mod scancode;

#[cfg(windows)]
mod dxgi;
#[cfg(windows)]
mod gdi;
#[cfg(windows)]
mod input;
#[cfg(windows)]
mod system;

#[cfg(windows)]
pub use gdi::{Desktop, Grabber, input_desktop_hidden};
#[cfg(windows)]
pub use input::{SendInputSink as Input, key_input, normalise};
#[cfg(windows)]
pub use system::Facts;
