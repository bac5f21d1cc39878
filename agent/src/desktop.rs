//! The desktop as the screen capture sees it: its monitors, whether anything changed, where
//! the pointer is and what the cursor looks like.
//!
//! On X11 (Linux) `x11rb` asks the X server: RandR 1.5 monitors (so each physical screen can
//! be shared on its own), DAMAGE (anything drawn), RandR screen-change events (resolution or
//! layout changed) and XFixes (the cursor image, which screen grabs do not contain). The
//! pixels themselves come from `scrap`'s X11 capturer (MIT-SHM), pointed at one monitor.
//!
//! Elsewhere (Windows, macOS) `scrap`'s portable API lists the displays and captures them;
//! change detection, the cursor and display origins are not implemented there yet, so every
//! frame is compared and the pointer maps to the primary display's origin.

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

#[cfg(target_os = "linux")]
pub use x11::{Desktop, Grabber};

#[cfg(target_os = "linux")]
mod x11 {
    use super::{CaptureError, Changes, CursorImage, Monitor, clamp_to_root, number_monitors};
    use deskline_protocol::DisplayInfo;
    use std::rc::Rc;
    use x11rb::connection::Connection as _;
    use x11rb::protocol::Event;
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    use x11rb::protocol::randr::{ConnectionExt as _, NotifyMask};
    use x11rb::protocol::xfixes::{ConnectionExt as _, CursorNotifyMask};
    use x11rb::protocol::xproto::{ConnectionExt as _, Window};
    use x11rb::rust_connection::RustConnection;

    fn x11_error(e: impl std::fmt::Display) -> CaptureError {
        CaptureError::X11(e.to_string())
    }

    /// The X11 desktop: a connection for events and queries, and `scrap`'s for the pixels.
    pub struct Desktop {
        conn: RustConnection,
        root: Window,
        damage: Option<u32>,
        monitors_supported: bool,
        cursor_supported: bool,
        scrap: Rc<scrap::x11::Server>,
    }

    impl Desktop {
        /// Connects to `$DISPLAY` and subscribes to the changes it can report. Missing
        /// extensions are not fatal: without DAMAGE every frame is compared, without RandR
        /// 1.5 the whole screen is one display, without XFixes the cursor is not drawn.
        pub fn open() -> Result<Desktop, CaptureError> {
            let scrap = scrap::x11::Server::default()
                .map_err(|e| CaptureError::Display(std::io::Error::other(format!("{e:?}"))))?;
            let (conn, screen) = x11rb::connect(None).map_err(x11_error)?;
            let root = conn.setup().roots.get(screen).ok_or_else(|| CaptureError::X11("no screen".into()))?.root;
            let damage = (|| -> Result<u32, CaptureError> {
                conn.damage_query_version(1, 1).map_err(x11_error)?.reply().map_err(x11_error)?;
                let damage = conn.generate_id().map_err(x11_error)?;
                conn.damage_create(damage, root, ReportLevel::NON_EMPTY).map_err(x11_error)?;
                Ok(damage)
            })();
            let damage = damage.inspect_err(|e| tracing::warn!(error = %e, "no DAMAGE: comparing every frame")).ok();
            let monitors_supported = conn
                .randr_query_version(1, 5)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|v| (v.major_version, v.minor_version) >= (1, 5));
            if monitors_supported {
                let mask = NotifyMask::SCREEN_CHANGE | NotifyMask::CRTC_CHANGE | NotifyMask::OUTPUT_CHANGE;
                conn.randr_select_input(root, mask).map_err(x11_error)?;
            } else {
                tracing::warn!("no RandR 1.5: the whole screen is shared as one display");
            }
            let cursor_supported = conn.xfixes_query_version(4, 0).ok().and_then(|c| c.reply().ok()).is_some();
            if cursor_supported {
                conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR).map_err(x11_error)?;
            } else {
                tracing::warn!("no XFixes: the mouse cursor is not drawn into the stream");
            }
            conn.flush().map_err(x11_error)?;
            Ok(Desktop { conn, root, damage, monitors_supported, cursor_supported, scrap: Rc::new(scrap) })
        }

        /// The monitors, primary first; the whole screen when RandR lists none.
        pub fn monitors(&self) -> Result<Vec<Monitor>, CaptureError> {
            let geometry = self.conn.get_geometry(self.root).map_err(x11_error)?.reply().map_err(x11_error)?;
            let (root_w, root_h) = (i32::from(geometry.width), i32::from(geometry.height));
            let mut monitors = Vec::new();
            if self.monitors_supported {
                let reply = self.conn.randr_get_monitors(self.root, true).map_err(x11_error)?.reply().map_err(x11_error)?;
                for m in reply.monitors {
                    let rect = (i32::from(m.x), i32::from(m.y), i32::from(m.width), i32::from(m.height));
                    let Some((x, y, w, h)) = clamp_to_root(rect.0, rect.1, rect.2, rect.3, root_w, root_h) else { continue };
                    let name = self
                        .conn
                        .get_atom_name(m.name)
                        .ok()
                        .and_then(|c| c.reply().ok())
                        .map_or_else(|| "monitor".to_owned(), |r| String::from_utf8_lossy(&r.name).into_owned());
                    let info = DisplayInfo { id: 0, name, width: w as u32, height: h as u32, primary: m.primary };
                    monitors.push(Monitor { info, x, y });
                }
            }
            if monitors.is_empty() {
                let info = DisplayInfo { id: 0, name: "screen".into(), width: root_w as u32, height: root_h as u32, primary: true };
                monitors.push(Monitor { info, x: 0, y: 0 });
            }
            if !monitors.iter().any(|m| m.info.primary) {
                monitors[0].info.primary = true;
            }
            Ok(number_monitors(monitors))
        }

        /// A capturer for one monitor.
        pub fn grabber(&self, monitor: &Monitor) -> Result<Grabber, CaptureError> {
            let rect = scrap::x11::Rect {
                x: i16::try_from(monitor.x).unwrap_or(0),
                y: i16::try_from(monitor.y).unwrap_or(0),
                w: u16::try_from(monitor.info.width).unwrap_or(u16::MAX),
                h: u16::try_from(monitor.info.height).unwrap_or(u16::MAX),
            };
            // SAFETY: `Display::new` only records its arguments; they describe a rectangle
            // (clamped to the screen) of this server's root window, which is what scrap's own
            // monitor listing would pass.
            #[allow(unsafe_code)]
            let display = unsafe { scrap::x11::Display::new(self.scrap.clone(), monitor.info.primary, rect, self.root) };
            let capturer = scrap::x11::Capturer::new(display).map_err(CaptureError::Display)?;
            Ok(Grabber { capturer, width: usize::from(rect.w), height: usize::from(rect.h) })
        }

        /// Takes the events that arrived since the last call.
        pub fn poll(&mut self) -> Changes {
            let mut changes = Changes { drawn: self.damage.is_none(), ..Changes::default() };
            while let Ok(Some(event)) = self.conn.poll_for_event() {
                match event {
                    Event::DamageNotify(_) => changes.drawn = true,
                    Event::RandrScreenChangeNotify(_) | Event::RandrNotify(_) => changes.layout = true,
                    Event::XfixesCursorNotify(_) => changes.cursor_shape = true,
                    _ => {}
                }
            }
            if let (true, Some(damage)) = (changes.drawn, self.damage) {
                let _ = self.conn.damage_subtract(damage, x11rb::NONE, x11rb::NONE);
                let _ = self.conn.flush();
            }
            changes
        }

        /// Where the pointer is on the desktop.
        pub fn pointer(&self) -> Option<(i32, i32)> {
            let reply = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
            Some((i32::from(reply.root_x), i32::from(reply.root_y)))
        }

        /// The cursor's current image.
        pub fn cursor(&self) -> Option<CursorImage> {
            if !self.cursor_supported {
                return None;
            }
            let reply = self.conn.xfixes_get_cursor_image().ok()?.reply().ok()?;
            Some(CursorImage {
                width: usize::from(reply.width),
                height: usize::from(reply.height),
                hot_x: i32::from(reply.xhot),
                hot_y: i32::from(reply.yhot),
                argb: reply.cursor_image,
            })
        }
    }

    /// Captures one monitor.
    pub struct Grabber {
        capturer: scrap::x11::Capturer,
        width: usize,
        height: usize,
    }

    impl Grabber {
        /// The latest image: `height` rows of `stride` bytes, BGRA. MIT-SHM capture is
        /// pipelined: this returns the image asked for by the previous call.
        pub fn frame(&mut self) -> Result<(&[u8], usize), CaptureError> {
            let stride = self.width * 4;
            Ok((self.capturer.frame(), stride))
        }

        /// Width in pixels.
        pub fn width(&self) -> usize {
            self.width
        }

        /// Height in pixels.
        pub fn height(&self) -> usize {
            self.height
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub use portable::{Desktop, Grabber};

#[cfg(not(target_os = "linux"))]
mod portable {
    use super::{CaptureError, Changes, CursorImage, Monitor, number_monitors};
    use deskline_protocol::DisplayInfo;

    /// The displays through `scrap`'s portable API.
    pub struct Desktop;

    impl Desktop {
        /// Nothing to connect to.
        pub fn open() -> Result<Desktop, CaptureError> {
            Ok(Desktop)
        }

        /// The displays `scrap` lists (origins unknown: taken as 0, 0).
        pub fn monitors(&self) -> Result<Vec<Monitor>, CaptureError> {
            let all = scrap::Display::all().map_err(CaptureError::Display)?;
            let monitors = all
                .iter()
                .enumerate()
                .map(|(i, d)| Monitor {
                    info: DisplayInfo {
                        id: 0,
                        name: format!("display {}", i + 1),
                        width: u32::try_from(d.width()).unwrap_or(0),
                        height: u32::try_from(d.height()).unwrap_or(0),
                        primary: i == 0,
                    },
                    x: 0,
                    y: 0,
                })
                .collect();
            Ok(number_monitors(monitors))
        }

        /// A capturer for one display.
        pub fn grabber(&self, monitor: &Monitor) -> Result<Grabber, CaptureError> {
            let mut all = scrap::Display::all().map_err(CaptureError::Display)?;
            let index = usize::try_from(monitor.info.id).unwrap_or(0).min(all.len().saturating_sub(1));
            if all.is_empty() {
                return Err(CaptureError::Display(std::io::ErrorKind::NotFound.into()));
            }
            let capturer = scrap::Capturer::new(all.swap_remove(index)).map_err(CaptureError::Display)?;
            Ok(Grabber { capturer })
        }

        /// No change notification here: everything may have changed.
        pub fn poll(&mut self) -> Changes {
            Changes { drawn: true, ..Changes::default() }
        }

        /// Not implemented here.
        pub fn pointer(&self) -> Option<(i32, i32)> {
            None
        }

        /// Not implemented here.
        pub fn cursor(&self) -> Option<CursorImage> {
            None
        }
    }

    /// Captures one display.
    pub struct Grabber {
        capturer: scrap::Capturer,
    }

    impl Grabber {
        /// The latest image and its row stride.
        pub fn frame(&mut self) -> Result<(&[u8], usize), CaptureError> {
            let height = self.capturer.height().max(1);
            let frame = self.capturer.frame().map_err(CaptureError::Display)?;
            let stride = frame.len() / height;
            Ok((&frame[..], stride))
        }

        /// Width in pixels.
        pub fn width(&self) -> usize {
            self.capturer.width()
        }

        /// Height in pixels.
        pub fn height(&self) -> usize {
            self.capturer.height()
        }
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
