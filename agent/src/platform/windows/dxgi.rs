//! DXGI Desktop Duplication: the fast path on real Windows (8 and later). The compositor hands
//! over each new desktop image as a GPU texture with the rectangles that changed; the app
//! copies it to a CPU-readable staging texture and takes only the changed rectangles into its
//! own image. When nothing was presented since the last look, nothing is copied at all.
//!
//! Where it is unavailable (Wine's `DuplicateOutput` returns `E_NOTIMPL`, some virtual GPUs,
//! RDP sessions before Windows 10, a rotated monitor, which GDI handles) [`Duplication::open`]
//! fails and the caller falls back to GDI. Access is lost on every desktop switch (a UAC
//! prompt, the lock screen) and mode change: the duplication is recreated on the next frame,
//! and while Windows refuses it the screen counts as hidden
//! ([`CaptureError::Blocked`](crate::platform::CaptureError::Blocked)).
//!
//! Only a real Windows machine can exercise this path; the Wine tests exercise its fallback.

// Every call into Windows is FFI; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use crate::platform::{CaptureError, Monitor};
use deskline_protocol::PauseReason;
use windows::Win32::Foundation::{E_ACCESSDENIED, HMODULE, RECT};
use windows::Win32::Graphics::Direct3D::D3D_DRIVER_TYPE_UNKNOWN;
use windows::Win32::Graphics::Direct3D11::{
    D3D11_CPU_ACCESS_READ, D3D11_CREATE_DEVICE_BGRA_SUPPORT, D3D11_MAP_READ, D3D11_MAPPED_SUBRESOURCE, D3D11_SDK_VERSION,
    D3D11_TEXTURE2D_DESC, D3D11_USAGE_STAGING, D3D11CreateDevice, ID3D11Device, ID3D11DeviceContext, ID3D11Texture2D,
};
use windows::Win32::Graphics::Dxgi::Common::{
    DXGI_FORMAT_B8G8R8A8_UNORM, DXGI_MODE_ROTATION_IDENTITY, DXGI_MODE_ROTATION_UNSPECIFIED, DXGI_SAMPLE_DESC,
};
use windows::Win32::Graphics::Dxgi::{
    CreateDXGIFactory1, DXGI_ERROR_ACCESS_LOST, DXGI_ERROR_WAIT_TIMEOUT, DXGI_OUTDUPL_FRAME_INFO, DXGI_OUTDUPL_MOVE_RECT,
    IDXGIFactory1, IDXGIOutput1, IDXGIOutputDuplication, IDXGIResource,
};
use windows::core::Interface as _;

fn failed(what: &str, e: &windows::core::Error) -> CaptureError {
    CaptureError::Windows(format!("{what}: {e}"))
}

/// One monitor duplicated.
pub struct Duplication {
    device: ID3D11Device,
    context: ID3D11DeviceContext,
    output: IDXGIOutput1,
    duplication: Option<IDXGIOutputDuplication>,
    staging: ID3D11Texture2D,
    /// The last image, BGRA rows of `width × 4` bytes.
    image: Vec<u8>,
    width: usize,
    height: usize,
    /// The image holds a whole desktop picture (after the first presented frame).
    complete: bool,
    /// Scratch for the changed rectangles.
    rects: Vec<RECT>,
    moves: Vec<DXGI_OUTDUPL_MOVE_RECT>,
}

impl Duplication {
    /// Duplicates the DXGI output that covers `monitor` exactly.
    ///
    /// # Errors
    /// No such output, a rotated one, or Windows refuses duplication (then GDI is used).
    pub fn open(monitor: &Monitor) -> Result<Duplication, CaptureError> {
        // SAFETY: COM calls on interfaces that stay alive for the loop's duration.
        unsafe {
            let factory: IDXGIFactory1 = CreateDXGIFactory1().map_err(|e| failed("CreateDXGIFactory1", &e))?;
            let mut a = 0;
            while let Ok(adapter) = factory.EnumAdapters1(a) {
                a += 1;
                let mut o = 0;
                while let Ok(output) = adapter.EnumOutputs(o) {
                    o += 1;
                    let Ok(desc) = output.GetDesc() else { continue };
                    let r = desc.DesktopCoordinates;
                    let (w, h) = (r.right - r.left, r.bottom - r.top);
                    if r.left != monitor.x
                        || r.top != monitor.y
                        || u32::try_from(w).ok() != Some(monitor.info.width)
                        || u32::try_from(h).ok() != Some(monitor.info.height)
                    {
                        continue;
                    }
                    if desc.Rotation != DXGI_MODE_ROTATION_IDENTITY && desc.Rotation != DXGI_MODE_ROTATION_UNSPECIFIED {
                        return Err(CaptureError::Windows("a rotated monitor: captured with GDI".into()));
                    }
                    let mut device = None;
                    let mut context = None;
                    D3D11CreateDevice(
                        &adapter,
                        D3D_DRIVER_TYPE_UNKNOWN,
                        HMODULE::default(),
                        D3D11_CREATE_DEVICE_BGRA_SUPPORT,
                        None,
                        D3D11_SDK_VERSION,
                        Some(&mut device),
                        None,
                        Some(&mut context),
                    )
                    .map_err(|e| failed("D3D11CreateDevice", &e))?;
                    let (Some(device), Some(context)) = (device, context) else {
                        return Err(CaptureError::Windows("D3D11CreateDevice returned no device".into()));
                    };
                    let output: IDXGIOutput1 = output.cast().map_err(|e| failed("IDXGIOutput1", &e))?;
                    let duplication = output.DuplicateOutput(&device).map_err(|e| failed("DuplicateOutput", &e))?;
                    let (width, height) = (monitor.info.width as usize, monitor.info.height as usize);
                    let texture = D3D11_TEXTURE2D_DESC {
                        Width: monitor.info.width,
                        Height: monitor.info.height,
                        MipLevels: 1,
                        ArraySize: 1,
                        Format: DXGI_FORMAT_B8G8R8A8_UNORM,
                        SampleDesc: DXGI_SAMPLE_DESC { Count: 1, Quality: 0 },
                        Usage: D3D11_USAGE_STAGING,
                        BindFlags: 0,
                        CPUAccessFlags: D3D11_CPU_ACCESS_READ.0 as u32,
                        MiscFlags: 0,
                    };
                    let mut staging = None;
                    device.CreateTexture2D(&texture, None, Some(&mut staging)).map_err(|e| failed("CreateTexture2D", &e))?;
                    let staging = staging.ok_or_else(|| CaptureError::Windows("CreateTexture2D returned nothing".into()))?;
                    return Ok(Duplication {
                        device,
                        context,
                        output,
                        duplication: Some(duplication),
                        staging,
                        image: vec![0; width * height * 4],
                        width,
                        height,
                        complete: false,
                        rects: Vec::new(),
                        moves: Vec::new(),
                    });
                }
            }
        }
        Err(CaptureError::Windows("no DXGI output covers this monitor".into()))
    }

    /// The last image taken, and its row stride.
    pub fn image(&self) -> (&[u8], usize) {
        (&self.image, self.width * 4)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Takes what changed since the last call into the image ([`Duplication::image`]);
    /// nothing when nothing new was presented.
    ///
    /// # Errors
    /// Windows refuses duplication for now (the secure desktop), or DXGI failed for good
    /// (the caller then captures with GDI).
    pub fn frame(&mut self) -> Result<(), CaptureError> {
        let duplication = match &self.duplication {
            Some(d) => d.clone(),
            None => {
                // SAFETY: both interfaces are alive; a failure leaves nothing behind.
                let d = unsafe { self.output.DuplicateOutput(&self.device) }.map_err(|e| {
                    if e.code() == E_ACCESSDENIED { CaptureError::Blocked(PauseReason::SecureDesktop) } else { failed("DuplicateOutput", &e) }
                })?;
                self.complete = false;
                self.duplication.insert(d).clone()
            }
        };
        let mut info = DXGI_OUTDUPL_FRAME_INFO::default();
        let mut resource: Option<IDXGIResource> = None;
        // SAFETY: `info` and `resource` are written by the call; the frame is released below.
        match unsafe { duplication.AcquireNextFrame(0, &mut info, &mut resource) } {
            Ok(()) => {}
            Err(e) if e.code() == DXGI_ERROR_WAIT_TIMEOUT => return Ok(()),
            Err(e) if e.code() == DXGI_ERROR_ACCESS_LOST => {
                // A desktop switch or a mode change: duplicate again next time.
                self.duplication = None;
                return Ok(());
            }
            Err(e) => return Err(failed("AcquireNextFrame", &e)),
        }
        let copied = if info.LastPresentTime != 0 { self.take_changes(&duplication, &info, resource) } else { Ok(()) };
        // SAFETY: a frame was acquired above.
        let _ = unsafe { duplication.ReleaseFrame() };
        copied
    }

    /// Copies what changed in the presented frame into `image`.
    fn take_changes(&mut self, duplication: &IDXGIOutputDuplication, info: &DXGI_OUTDUPL_FRAME_INFO, resource: Option<IDXGIResource>) -> Result<(), CaptureError> {
        let resource = resource.ok_or_else(|| CaptureError::Windows("AcquireNextFrame returned no image".into()))?;
        let texture: ID3D11Texture2D = resource.cast().map_err(|e| failed("the desktop texture", &e))?;
        self.changed_rects(duplication, info);
        // SAFETY: the staging texture has the desktop texture's size and format; it is mapped
        // for reading and unmapped before return; rows are read within `RowPitch × height`.
        unsafe {
            self.context.CopyResource(&self.staging, &texture);
            let mut mapped = D3D11_MAPPED_SUBRESOURCE::default();
            self.context.Map(&self.staging, 0, D3D11_MAP_READ, 0, Some(&mut mapped)).map_err(|e| failed("Map", &e))?;
            let pitch = mapped.RowPitch as usize;
            let source = std::slice::from_raw_parts(mapped.pData.cast::<u8>(), pitch * self.height);
            let row_bytes = self.width * 4;
            if self.complete && !self.rects.is_empty() {
                for r in &self.rects {
                    let (x0, x1) = (clamp(r.left, self.width), clamp(r.right, self.width));
                    let (y0, y1) = (clamp(r.top, self.height), clamp(r.bottom, self.height));
                    for y in y0..y1 {
                        self.image[y * row_bytes + x0 * 4..y * row_bytes + x1 * 4].copy_from_slice(&source[y * pitch + x0 * 4..y * pitch + x1 * 4]);
                    }
                }
            } else {
                for y in 0..self.height {
                    self.image[y * row_bytes..(y + 1) * row_bytes].copy_from_slice(&source[y * pitch..y * pitch + row_bytes]);
                }
                self.complete = true;
            }
            self.context.Unmap(&self.staging, 0);
        }
        Ok(())
    }

    /// The frame's dirty rectangles and the destinations of its moved ones, into `rects`;
    /// empty when they cannot be read (then the whole image is taken).
    fn changed_rects(&mut self, duplication: &IDXGIOutputDuplication, info: &DXGI_OUTDUPL_FRAME_INFO) {
        self.rects.clear();
        let capacity = info.TotalMetadataBufferSize as usize;
        if capacity == 0 {
            return;
        }
        self.moves.clear();
        self.moves.resize(capacity / std::mem::size_of::<DXGI_OUTDUPL_MOVE_RECT>() + 1, DXGI_OUTDUPL_MOVE_RECT::default());
        let mut needed = 0u32;
        let size = u32::try_from(self.moves.len() * std::mem::size_of::<DXGI_OUTDUPL_MOVE_RECT>()).unwrap_or(0);
        // SAFETY: the buffer holds `size` bytes; the call writes at most that and says how much.
        if unsafe { duplication.GetFrameMoveRects(size, self.moves.as_mut_ptr(), &mut needed) }.is_err() {
            return;
        }
        let moved = needed as usize / std::mem::size_of::<DXGI_OUTDUPL_MOVE_RECT>();
        self.rects.extend(self.moves[..moved].iter().map(|m| m.DestinationRect));
        let mut dirty = vec![RECT::default(); capacity / std::mem::size_of::<RECT>() + 1];
        let size = u32::try_from(dirty.len() * std::mem::size_of::<RECT>()).unwrap_or(0);
        // SAFETY: as above.
        if unsafe { duplication.GetFrameDirtyRects(size, dirty.as_mut_ptr(), &mut needed) }.is_err() {
            self.rects.clear();
            return;
        }
        dirty.truncate(needed as usize / std::mem::size_of::<RECT>());
        self.rects.extend(dirty);
    }
}

fn clamp(v: i32, max: usize) -> usize {
    usize::try_from(v).unwrap_or(0).min(max)
}
