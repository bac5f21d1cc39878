//! The Windows desktop through GDI: monitors from `EnumDisplayMonitors`, pixels with `BitBlt`
//! from the screen into a DIB section (one copy, no `GetDIBits`), the cursor from
//! `GetCursorInfo` drawn with `DrawIconEx`. Where Windows offers DXGI Desktop Duplication
//! ([`super::dxgi`]) the pixels come from there instead; GDI is the fallback.
//!
//! GDI works everywhere — RDP sessions, virtual machines without a GPU, Wine — at a few
//! milliseconds per 1080p frame. Windows cannot say what was drawn through GDI, so every
//! frame is compared with the last one ([`crate::tiles`]); the layout is compared on every
//! poll (a cheap call). Positions are physical pixels: the process is per-monitor DPI aware
//! ([`super::Facts`]'s `prepare`).
//!
//! When the input desktop is not the user's (a UAC prompt on the secure desktop, the lock
//! screen), no app may read it: capture says so ([`CaptureError::Blocked`]) instead of
//! sending black.

// Every call into Windows is FFI; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use super::dxgi::Duplication;
use std::cell::Cell;
use std::rc::Rc;
use crate::platform::{CaptureError, Changes, CursorImage, Monitor, number_monitors};
use deskline_protocol::{DisplayInfo, PauseReason};
use windows::Win32::Foundation::{HANDLE, LPARAM, RECT};
use windows::Win32::Graphics::Gdi::{
    BI_RGB, BITMAP, BITMAPINFO, BITMAPINFOHEADER, BitBlt, CAPTUREBLT, CreateCompatibleDC, CreateDIBSection, DIB_RGB_COLORS,
    DeleteDC, DeleteObject, EnumDisplayMonitors, GdiFlush, GetDC, GetMonitorInfoW, GetObjectW, HBITMAP, HDC, HGDIOBJ,
    HMONITOR, MONITORINFO, MONITORINFOEXW, ReleaseDC, SRCCOPY, SelectObject,
};
use windows::Win32::System::StationsAndDesktops::{
    CloseDesktop, DESKTOP_CONTROL_FLAGS, DESKTOP_READOBJECTS, GetUserObjectInformationW, OpenInputDesktop, UOI_NAME,
};
use windows::Win32::UI::WindowsAndMessaging::{
    CURSOR_SHOWING, CURSORINFO, DI_NORMAL, DrawIconEx, GetCursorInfo, GetIconInfo, HICON, ICONINFO, MONITORINFOF_PRIMARY,
};
use windows::core::BOOL;

fn windows_error(what: &str, e: &windows::core::Error) -> CaptureError {
    CaptureError::Windows(format!("{what}: {e}"))
}

/// The Windows desktop.
pub struct Desktop {
    /// Whether DXGI Desktop Duplication is in use (until it fails once; shared with the
    /// grabber, which may fall back to GDI).
    dxgi: Rc<Cell<bool>>,
    /// The layout at the last poll, to notice changes.
    layout: Vec<Monitor>,
    /// The cursor handle at the last poll, to notice a new shape.
    cursor: isize,
}

/// The monitors as Windows lists them (unnumbered).
fn list_monitors() -> Vec<Monitor> {
    unsafe extern "system" fn each(monitor: HMONITOR, _: HDC, _: *mut RECT, data: LPARAM) -> BOOL {
        // SAFETY: `data` is the address of the `Vec` below, alive and not otherwise borrowed
        // during the enumeration, which calls back on this thread only.
        let found = unsafe { &mut *(data.0 as *mut Vec<(HMONITOR, MONITORINFOEXW)>) };
        let mut info = MONITORINFOEXW::default();
        info.monitorInfo.cbSize = u32::try_from(std::mem::size_of::<MONITORINFOEXW>()).unwrap_or(0);
        // SAFETY: `info` is a MONITORINFOEXW with its size set, as the call requires.
        if unsafe { GetMonitorInfoW(monitor, std::ptr::from_mut(&mut info).cast::<MONITORINFO>()) }.as_bool() {
            found.push((monitor, info));
        }
        true.into()
    }
    let mut found: Vec<(HMONITOR, MONITORINFOEXW)> = Vec::new();
    // SAFETY: the callback above only touches `found` through the pointer passed here, and
    // the enumeration finishes before `found` is used again.
    let _ = unsafe { EnumDisplayMonitors(None, None, Some(each), LPARAM(std::ptr::from_mut(&mut found) as isize)) };
    found
        .into_iter()
        .map(|(_, info)| {
            let r = info.monitorInfo.rcMonitor;
            let name_len = info.szDevice.iter().position(|&c| c == 0).unwrap_or(info.szDevice.len());
            let device = String::from_utf16_lossy(&info.szDevice[..name_len]);
            // `\\.\DISPLAY1` reads better as `DISPLAY1`.
            let name = device.trim_start_matches(['\\', '.']).to_owned();
            Monitor {
                info: DisplayInfo {
                    id: 0,
                    name,
                    width: u32::try_from(r.right - r.left).unwrap_or(0),
                    height: u32::try_from(r.bottom - r.top).unwrap_or(0),
                    primary: info.monitorInfo.dwFlags & MONITORINFOF_PRIMARY != 0,
                },
                x: r.left,
                y: r.top,
            }
        })
        .filter(|m| m.info.width > 0 && m.info.height > 0)
        .collect()
}

/// The cursor as Windows reports it: its handle and hot spot position, when it is shown.
fn cursor_info() -> Option<CURSORINFO> {
    let mut info = CURSORINFO { cbSize: u32::try_from(std::mem::size_of::<CURSORINFO>()).unwrap_or(0), ..Default::default() };
    // SAFETY: `info` is a CURSORINFO with its size set.
    unsafe { GetCursorInfo(&mut info) }.ok()?;
    (info.flags.0 & CURSOR_SHOWING.0 != 0).then_some(info)
}

/// Whether the desktop receiving input is one this app may not read (the secure desktop of a
/// UAC prompt, the lock screen's). Errors other than a refusal do not count: better to try
/// capturing than to report a block that is not there.
pub fn input_desktop_hidden() -> Option<PauseReason> {
    // SAFETY: plain call; the handle is closed below.
    let desktop = match unsafe { OpenInputDesktop(DESKTOP_CONTROL_FLAGS(0), false, DESKTOP_READOBJECTS) } {
        Ok(d) => d,
        Err(e) if e.code() == windows::Win32::Foundation::E_ACCESSDENIED => return Some(PauseReason::SecureDesktop),
        Err(_) => return None,
    };
    let mut name = [0u16; 64];
    let mut needed = 0u32;
    // SAFETY: the buffer and its length in bytes match; `desktop` is open.
    let named = unsafe {
        GetUserObjectInformationW(
            HANDLE(desktop.0),
            UOI_NAME,
            Some(name.as_mut_ptr().cast()),
            u32::try_from(std::mem::size_of_val(&name)).unwrap_or(0),
            Some(&mut needed),
        )
    };
    // SAFETY: opened above, closed once.
    let _ = unsafe { CloseDesktop(desktop) };
    named.ok()?;
    let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    match String::from_utf16_lossy(&name[..len]).to_ascii_lowercase().as_str() {
        "winlogon" => Some(PauseReason::SecureDesktop),
        "screen-saver" => Some(PauseReason::ScreenSaver),
        _ => None,
    }
}

/// A top-down 32-bit DIB section selected into its own memory DC: GDI draws into it, the app
/// reads its pixels directly.
struct Canvas {
    dc: HDC,
    bitmap: HBITMAP,
    previous: HGDIOBJ,
    bits: *mut u8,
    width: usize,
    height: usize,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Result<Canvas, CaptureError> {
        let header = BITMAPINFOHEADER {
            biSize: u32::try_from(std::mem::size_of::<BITMAPINFOHEADER>()).unwrap_or(0),
            biWidth: i32::try_from(width).map_err(|_| CaptureError::Windows("monitor too wide".into()))?,
            // Negative height: rows top to bottom, like every other image in the app.
            biHeight: -i32::try_from(height).map_err(|_| CaptureError::Windows("monitor too tall".into()))?,
            biPlanes: 1,
            biBitCount: 32,
            biCompression: BI_RGB.0,
            ..Default::default()
        };
        let info = BITMAPINFO { bmiHeader: header, ..Default::default() };
        // SAFETY: a memory DC compatible with the screen; deleted in Drop.
        let dc = unsafe { CreateCompatibleDC(None) };
        if dc.is_invalid() {
            return Err(CaptureError::Windows("CreateCompatibleDC failed".into()));
        }
        let mut bits = std::ptr::null_mut();
        // SAFETY: `info` describes a 32-bit top-down DIB; `bits` receives its memory, owned by
        // the bitmap until DeleteObject in Drop.
        let bitmap = match unsafe { CreateDIBSection(Some(dc), &info, DIB_RGB_COLORS, &mut bits, None, 0) } {
            Ok(b) if !bits.is_null() => b,
            Ok(_) | Err(_) => {
                // SAFETY: created above, not used elsewhere.
                let _ = unsafe { DeleteDC(dc) };
                return Err(CaptureError::Windows(format!("CreateDIBSection {width}x{height} failed")));
            }
        };
        // SAFETY: both handles are valid; the previous object is put back in Drop.
        let previous = unsafe { SelectObject(dc, bitmap.into()) };
        Ok(Canvas { dc, bitmap, previous, bits: bits.cast(), width, height })
    }

    /// The pixels, BGRA rows of `width × 4` bytes.
    fn pixels(&self) -> &[u8] {
        // SAFETY: GDI has finished drawing (GdiFlush after every operation); the DIB section
        // holds width × height 32-bit pixels for the canvas's lifetime.
        unsafe { std::slice::from_raw_parts(self.bits, self.width * self.height * 4) }
    }

    fn pixels_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `pixels`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.bits, self.width * self.height * 4) }
    }
}

impl Drop for Canvas {
    fn drop(&mut self) {
        // SAFETY: the handles were created in `new` and are released once, in this order.
        unsafe {
            SelectObject(self.dc, self.previous);
            let _ = DeleteObject(self.bitmap.into());
            let _ = DeleteDC(self.dc);
        }
    }
}

/// The screen's device context, released when dropped.
struct ScreenDc(HDC);

impl ScreenDc {
    fn get() -> Result<ScreenDc, CaptureError> {
        // SAFETY: the DC of the whole virtual screen; released in Drop.
        let dc = unsafe { GetDC(None) };
        if dc.is_invalid() { Err(CaptureError::Windows("GetDC failed".into())) } else { Ok(ScreenDc(dc)) }
    }
}

impl Drop for ScreenDc {
    fn drop(&mut self) {
        // SAFETY: obtained from GetDC(None).
        unsafe { ReleaseDC(None, self.0) };
    }
}

impl crate::platform::Desktop for Desktop {
    type Grabber = Grabber;

    fn open() -> Result<Desktop, CaptureError> {
        let layout = number_monitors(list_monitors());
        if layout.is_empty() {
            return Err(CaptureError::Display(std::io::Error::other("Windows lists no monitor")));
        }
        Ok(Desktop { dxgi: Rc::new(Cell::new(true)), layout, cursor: 0 })
    }

    fn monitors(&self) -> Result<Vec<Monitor>, CaptureError> {
        let monitors = number_monitors(list_monitors());
        if monitors.is_empty() { Err(CaptureError::Display(std::io::Error::other("Windows lists no monitor"))) } else { Ok(monitors) }
    }

    fn grabber(&self, monitor: &Monitor) -> Result<Grabber, CaptureError> {
        if self.dxgi.get() {
            match Duplication::open(monitor) {
                Ok(duplication) => {
                    tracing::info!(display = %monitor.info.name, "capturing with DXGI Desktop Duplication");
                    return Ok(Grabber::Dxgi(duplication, monitor.clone(), self.dxgi.clone()));
                }
                Err(e) => {
                    // Not offered here (Wine, some virtual GPUs): GDI from now on.
                    tracing::info!(error = %e, "no DXGI Desktop Duplication: capturing with GDI");
                    self.dxgi.set(false);
                }
            }
        }
        Ok(Grabber::Gdi(GdiGrabber::new(monitor)?))
    }

    fn poll(&mut self) -> Changes {
        let layout = number_monitors(list_monitors());
        let changed_layout = !layout.is_empty() && layout != self.layout;
        if changed_layout {
            self.layout = layout;
        }
        let cursor = cursor_info().map_or(0, |c| c.hCursor.0 as isize);
        let cursor_shape = cursor != self.cursor;
        self.cursor = cursor;
        // DXGI says cheaply when nothing was presented; GDI copies the screen on every look.
        Changes { drawn: true, drawn_unknown: !self.dxgi.get(), layout: changed_layout, cursor_shape }
    }

    fn pointer(&self) -> Option<(i32, i32)> {
        cursor_info().map(|c| (c.ptScreenPos.x, c.ptScreenPos.y))
    }

    fn cursor(&self) -> Option<CursorImage> {
        cursor_image(HICON(cursor_info()?.hCursor.0))
    }
}

/// Renders `icon` (a cursor) to premultiplied ARGB. GDI draws monochrome cursors without
/// alpha, so the cursor is drawn twice, over black and over white: where the two agree the
/// pixel is opaque, where white shows through it is transparent by that much. Inverting
/// pixels (the text cursor's) come out black: visible on the light backgrounds most
/// applications use.
fn cursor_image(icon: HICON) -> Option<CursorImage> {
    let mut info = ICONINFO::default();
    // SAFETY: `info` receives the icon's bitmaps, deleted below.
    unsafe { GetIconInfo(icon, &mut info) }.ok()?;
    let (mask, colour) = (info.hbmMask, info.hbmColor);
    let size_of = |bitmap: HBITMAP| {
        let mut b = BITMAP::default();
        // SAFETY: `b` is a BITMAP and the size passed is its size.
        let n = unsafe { GetObjectW(bitmap.into(), i32::try_from(std::mem::size_of::<BITMAP>()).unwrap_or(0), Some(std::ptr::from_mut(&mut b).cast())) };
        (n > 0).then_some((usize::try_from(b.bmWidth).unwrap_or(0), usize::try_from(b.bmHeight).unwrap_or(0)))
    };
    // A monochrome cursor's mask holds the AND and the XOR halves one above the other.
    let size = if colour.is_invalid() { size_of(mask).map(|(w, h)| (w, h / 2)) } else { size_of(colour) };
    // SAFETY: GetIconInfo made copies of the bitmaps that the caller must delete.
    unsafe {
        if !mask.is_invalid() {
            let _ = DeleteObject(mask.into());
        }
        if !colour.is_invalid() {
            let _ = DeleteObject(colour.into());
        }
    }
    let (width, height) = size.filter(|&(w, h)| w > 0 && h > 0 && w <= 256 && h <= 256)?;
    let draw_over = |background: u8| -> Option<Vec<u8>> {
        let mut canvas = Canvas::new(width, height).ok()?;
        canvas.pixels_mut().fill(background);
        // SAFETY: the canvas's DC holds a bitmap of the cursor's size.
        unsafe {
            DrawIconEx(canvas.dc, 0, 0, icon, i32::try_from(width).ok()?, i32::try_from(height).ok()?, 0, None, DI_NORMAL).ok()?;
            let _ = GdiFlush();
        }
        Some(canvas.pixels().to_vec())
    };
    let (black, white) = (draw_over(0)?, draw_over(255)?);
    let argb = black
        .chunks_exact(4)
        .zip(white.chunks_exact(4))
        .map(|(b, w)| {
            // Over black a pixel is alpha × colour; over white alpha × colour + (1 − alpha) × 255.
            let shows_through = (0..3).map(|c| i32::from(w[c]) - i32::from(b[c])).max().unwrap_or(0);
            let alpha = u32::try_from((255 - shows_through).clamp(0, 255)).unwrap_or(0);
            if shows_through < 0 {
                return 0xff00_0000; // inverting: black
            }
            let channel = |c: usize| u32::from(b[c]).min(alpha);
            (alpha << 24) | (channel(2) << 16) | (channel(1) << 8) | channel(0)
        })
        .collect();
    Some(CursorImage { width, height, hot_x: i32::try_from(info.xHotspot).unwrap_or(0), hot_y: i32::try_from(info.yHotspot).unwrap_or(0), argb })
}

/// Captures one monitor with `BitBlt`.
pub struct GdiGrabber {
    screen: ScreenDc,
    canvas: Canvas,
    x: i32,
    y: i32,
}

impl GdiGrabber {
    fn new(monitor: &Monitor) -> Result<GdiGrabber, CaptureError> {
        let (width, height) = (monitor.info.width as usize, monitor.info.height as usize);
        Ok(GdiGrabber { screen: ScreenDc::get()?, canvas: Canvas::new(width, height)?, x: monitor.x, y: monitor.y })
    }

    fn frame(&mut self) -> Result<(&[u8], usize), CaptureError> {
        let (w, h) = (i32::try_from(self.canvas.width).unwrap_or(0), i32::try_from(self.canvas.height).unwrap_or(0));
        // SAFETY: both DCs are valid for the grabber's lifetime; the canvas is w × h.
        // CAPTUREBLT includes layered windows (menus, tooltips, many modern apps).
        unsafe {
            BitBlt(self.canvas.dc, 0, 0, w, h, Some(self.screen.0), self.x, self.y, SRCCOPY | CAPTUREBLT)
                .map_err(|e| windows_error("BitBlt", &e))?;
            let _ = GdiFlush();
        }
        Ok((self.canvas.pixels(), self.canvas.width * 4))
    }
}

/// Captures one monitor: with DXGI Desktop Duplication where Windows offers it, else (or
/// once it fails) with GDI.
pub enum Grabber {
    /// The fast path (and the flag its desktop reads).
    Dxgi(Duplication, Monitor, Rc<Cell<bool>>),
    /// Works everywhere.
    Gdi(GdiGrabber),
}

impl crate::platform::Grabber for Grabber {
    fn frame(&mut self) -> Result<(&[u8], usize), CaptureError> {
        if let Some(why) = input_desktop_hidden() {
            return Err(CaptureError::Blocked(why));
        }
        if let Grabber::Dxgi(duplication, monitor, in_use) = self {
            match duplication.frame() {
                // Borrowing rules: the image is returned from a second, plain borrow below.
                Ok(()) => {}
                Err(e @ CaptureError::Blocked(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "DXGI Desktop Duplication failed: capturing with GDI from now on");
                    in_use.set(false);
                    *self = Grabber::Gdi(GdiGrabber::new(monitor)?);
                }
            }
        }
        match self {
            Grabber::Dxgi(duplication, ..) => Ok(duplication.image()),
            Grabber::Gdi(gdi) => gdi.frame(),
        }
    }

    fn width(&self) -> usize {
        match self {
            Grabber::Dxgi(d, ..) => d.width(),
            Grabber::Gdi(g) => g.canvas.width,
        }
    }

    fn height(&self) -> usize {
        match self {
            Grabber::Dxgi(d, ..) => d.height(),
            Grabber::Gdi(g) => g.canvas.height,
        }
    }
}
