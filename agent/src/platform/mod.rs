//! Platform code at the edges: everything that differs between desktop systems sits behind
//! three small traits, with one folder per system.
//!
//! - [`Desktop`]: the desktop's facts — its monitors, whether anything changed, where the
//!   pointer is and what the cursor looks like — and a [`Grabber`] per monitor for its pixels.
//! - [`crate::InputSink`]: applying the technician's input.
//! - [`System`]: what the app says about the machine (system name, host name) and where it
//!   keeps its log.
//!
//! `x11/` (Linux with X11: scrap, x11rb, enigo) and `windows/` (GDI capture, `SendInput`;
//! its scan-code map compiles everywhere, so its tests run on Linux CI too) implement them; [`native`] is the one this build runs on. Everything else — the
//! connection, the windows, the encoder, rate control, change detection — is shared. A new
//! system (Wayland, macOS) is a new folder here.

#[cfg(target_os = "linux")]
pub mod x11;
#[cfg(target_os = "linux")]
pub use self::x11 as native;

pub mod windows;
#[cfg(windows)]
pub use self::windows as native;

use deskline_protocol::DisplayInfo;

/// Why the desktop cannot be captured.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No display to capture (no X server, or it refused).
    #[error("cannot open the display: {0}")]
    Display(std::io::Error),
    /// The X server's extensions failed.
    #[error("X11: {0}")]
    X11(String),
    /// A Windows call failed.
    #[error("Windows: {0}")]
    Windows(String),
    /// The system shows a screen that no app may capture (the secure desktop of a UAC
    /// prompt, the lock screen); the picture comes back when it goes away.
    #[error("the screen is hidden: {}", .0.describe())]
    Blocked(deskline_protocol::PauseReason),
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
}

/// A display that can be shared: what the relay is told, and where it is on the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// What the relay and the technicians see (id 0 is the primary display).
    pub info: DisplayInfo,
    /// Left edge on the desktop, in pixels.
    pub x: i32,
    /// Top edge on the desktop, in pixels.
    pub y: i32,
}

/// What changed since the last [`Desktop::poll`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Something was drawn (always true where change notification is missing).
    pub drawn: bool,
    /// The desktop cannot tell whether anything was drawn, and each look copies the whole
    /// picture (GDI; X11 without DAMAGE): the caller looks less often while nothing changes.
    pub drawn_unknown: bool,
    /// The resolution or the monitor layout changed.
    pub layout: bool,
    /// The cursor's shape changed.
    pub cursor_shape: bool,
}

/// The cursor's image: premultiplied ARGB pixels, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The hot spot (the pixel that points), from the image's top left.
    pub hot_x: i32,
    /// The hot spot's row.
    pub hot_y: i32,
    /// `width * height` pixels, `0xAARRGGBB`, colour premultiplied by alpha.
    pub argb: Vec<u32>,
}

/// Orders monitors for sharing: the primary first, then as the system lists them, numbered
/// from 0 in that order.
#[must_use]
pub fn number_monitors(mut monitors: Vec<Monitor>) -> Vec<Monitor> {
    monitors.sort_by_key(|m| !m.info.primary);
    for (i, m) in monitors.iter_mut().enumerate() {
        m.info.id = u32::try_from(i).unwrap_or(u32::MAX);
    }
    monitors
}

/// The part of `(x, y, w, h)` inside a `root_w` × `root_h` desktop, if any.
#[must_use]
pub fn clamp_to_root(x: i32, y: i32, w: i32, h: i32, root_w: i32, root_h: i32) -> Option<(i32, i32, i32, i32)> {
    let (x0, y0) = (x.max(0), y.max(0));
    let (x1, y1) = ((x + w).min(root_w), (y + h).min(root_h));
    (x1 > x0 && y1 > y0).then_some((x0, y0, x1 - x0, y1 - y0))
}

/// A desktop: its monitors and what changed on it. Created and used on the capture thread.
pub trait Desktop: Sized {
    /// Captures one monitor.
    type Grabber: Grabber;

    /// Connects to the desktop.
    ///
    /// # Errors
    /// No desktop to capture (no display server, or it refused).
    fn open() -> Result<Self, CaptureError>;

    /// The monitors, primary first, numbered from 0 ([`number_monitors`]).
    ///
    /// # Errors
    /// The display server failed.
    fn monitors(&self) -> Result<Vec<Monitor>, CaptureError>;

    /// A capturer for one monitor.
    ///
    /// # Errors
    /// The monitor cannot be captured.
    fn grabber(&self, monitor: &Monitor) -> Result<Self::Grabber, CaptureError>;

    /// What changed since the last call. Where the system cannot tell whether anything was
    /// drawn, `drawn` is always true and the caller compares images ([`crate::tiles`]).
    fn poll(&mut self) -> Changes;

    /// Where the pointer is on the desktop.
    fn pointer(&self) -> Option<(i32, i32)>;

    /// The cursor's current image.
    fn cursor(&self) -> Option<CursorImage>;
}

/// Captures the pixels of one monitor.
pub trait Grabber {
    /// The latest image: `height` rows of `stride` bytes each, BGRA (alpha ignored).
    ///
    /// # Errors
    /// Capture failed (see [`CaptureError::Blocked`] for a screen the system hides).
    fn frame(&mut self) -> Result<(&[u8], usize), CaptureError>;

    /// Width in pixels.
    fn width(&self) -> usize;

    /// Height in pixels.
    fn height(&self) -> usize;

    /// Whether [`Grabber::frame`] returns the image asked for by the previous call (X11's
    /// MIT-SHM capture): after an idle spell the caller captures twice for a fresh image.
    fn pipelined(&self) -> bool {
        false
    }
}

/// What the app tells the relay about the machine, and where it logs.
pub trait System {
    /// The operating system's name and version, as its users know it.
    fn os_name() -> String;

    /// The machine's name.
    fn host_name() -> String;

    /// Who is signed in, the processor, memory and uptime (for the technician's session
    /// detail). Whatever cannot be read is left empty or zero.
    fn machine() -> deskline_protocol::MachineFacts;

    /// The directory for the app's log file.
    fn log_dir() -> Option<std::path::PathBuf>;

    /// Where files from the technician are saved unless the end user chooses another folder:
    /// the user's Downloads folder.
    fn downloads() -> Option<std::path::PathBuf>;

    /// Where an installed app finds its relay (`deskline_net::relay_file`), the user's own file
    /// first, then the machine's.
    fn relay_files() -> Vec<std::path::PathBuf>;

    /// Sets up the process before any window or capture (Windows: per-monitor DPI awareness,
    /// so positions are physical pixels).
    fn prepare() {}

    /// Keeps one of the app's windows out of the captured picture (the technician does not
    /// need to see the consent popup or the session bar, and a window that sees itself
    /// captured is a hall of mirrors).
    ///
    /// # Errors
    /// The system cannot (X11 has no such notion: the windows are small and on top).
    fn keep_out_of_capture(_window: &dyn raw_window_handle::HasWindowHandle) -> Result<(), String> {
        Err("this desktop cannot keep a window out of screen captures".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(name: &str, primary: bool) -> Monitor {
        Monitor { info: DisplayInfo { id: 9, name: name.into(), width: 10, height: 10, primary }, x: 0, y: 0 }
    }

    #[test]
    fn the_primary_monitor_is_number_zero() {
        let numbered = number_monitors(vec![monitor("left", false), monitor("middle", true), monitor("right", false)]);
        let order: Vec<(u32, &str)> = numbered.iter().map(|m| (m.info.id, m.info.name.as_str())).collect();
        assert_eq!(order, [(0, "middle"), (1, "left"), (2, "right")]);
    }

    #[test]
    fn monitors_are_clamped_to_the_screen() {
        assert_eq!(clamp_to_root(0, 0, 1920, 1080, 1280, 720), Some((0, 0, 1280, 720)));
        assert_eq!(clamp_to_root(960, 0, 960, 1080, 1920, 1080), Some((960, 0, 960, 1080)));
        assert_eq!(clamp_to_root(-10, -10, 100, 100, 50, 50), Some((0, 0, 50, 50)));
        assert_eq!(clamp_to_root(1920, 0, 100, 100, 1280, 720), None, "entirely off screen");
    }
}
