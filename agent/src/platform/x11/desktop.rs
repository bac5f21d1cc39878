//! The X11 desktop: `x11rb` asks the X server for RandR 1.5 monitors (so each physical screen
//! can be shared on its own), DAMAGE (anything drawn), RandR screen-change events (resolution
//! or layout changed) and XFixes (the cursor image, which screen grabs do not contain). The
//! pixels themselves come from `scrap`'s X11 capturer (MIT-SHM), pointed at one monitor.

use crate::platform::{CaptureError, Changes, CursorImage, Monitor, clamp_to_root, number_monitors};
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

impl crate::platform::Desktop for Desktop {
    type Grabber = Grabber;

    /// Connects to `$DISPLAY` and subscribes to the changes it can report. Missing
    /// extensions are not fatal: without DAMAGE every frame is compared, without RandR
    /// 1.5 the whole screen is one display, without XFixes the cursor is not drawn.
    fn open() -> Result<Desktop, CaptureError> {
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
    fn monitors(&self) -> Result<Vec<Monitor>, CaptureError> {
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
    fn grabber(&self, monitor: &Monitor) -> Result<Grabber, CaptureError> {
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
    fn poll(&mut self) -> Changes {
        let mut changes = Changes { drawn: self.damage.is_none(), drawn_unknown: self.damage.is_none(), ..Changes::default() };
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
    fn pointer(&self) -> Option<(i32, i32)> {
        let reply = self.conn.query_pointer(self.root).ok()?.reply().ok()?;
        Some((i32::from(reply.root_x), i32::from(reply.root_y)))
    }

    /// The cursor's current image.
    fn cursor(&self) -> Option<CursorImage> {
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

impl crate::platform::Grabber for Grabber {
    /// MIT-SHM capture is pipelined: this returns the image asked for by the previous call.
    fn frame(&mut self) -> Result<(&[u8], usize), CaptureError> {
        let stride = self.width * 4;
        Ok((self.capturer.frame(), stride))
    }

    /// Width in pixels.
    fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    fn height(&self) -> usize {
        self.height
    }

    fn pipelined(&self) -> bool {
        true
    }
}
