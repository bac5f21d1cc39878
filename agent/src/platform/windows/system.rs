//! What the app says about a Windows machine, where it logs, and how its windows behave.

use deskline_protocol::MachineFacts;
use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use std::path::PathBuf;
use windows::Win32::Foundation::HWND;
use windows::Win32::System::Registry::{HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ, RegGetValueW};
use windows::Win32::System::SystemInformation::{GetTickCount64, GlobalMemoryStatusEx, MEMORYSTATUSEX};
use windows::Win32::UI::HiDpi::{
    DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE, DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2, SetProcessDpiAwarenessContext,
};
use windows::Win32::UI::WindowsAndMessaging::{SetWindowDisplayAffinity, WDA_EXCLUDEFROMCAPTURE};
use windows::core::{HSTRING, PCWSTR};

/// A string value under `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
fn current_version(name: &str) -> Option<String> {
    machine_string(r"SOFTWARE\Microsoft\Windows NT\CurrentVersion", name)
}

/// A string value under `HKLM\<key>`.
fn machine_string(key: &str, name: &str) -> Option<String> {
    let key = HSTRING::from(key);
    let value = HSTRING::from(name);
    let mut buffer = [0u16; 256];
    let mut size = u32::try_from(std::mem::size_of_val(&buffer)).ok()?;
    // SAFETY: the buffer and its size in bytes match; RRF_RT_REG_SZ makes the value a
    // terminated string.
    #[allow(unsafe_code)]
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            PCWSTR(key.as_ptr()),
            PCWSTR(value.as_ptr()),
            RRF_RT_REG_SZ,
            None,
            Some(buffer.as_mut_ptr().cast()),
            Some(&mut size),
        )
    };
    if status.is_err() {
        return None;
    }
    let len = buffer.iter().position(|&c| c == 0).unwrap_or(buffer.len());
    Some(String::from_utf16_lossy(&buffer[..len])).filter(|s| !s.is_empty())
}

/// The machine's facts, from the registry and the environment.
pub struct Facts;

impl crate::platform::System for Facts {
    /// "Windows 11 Pro 23H2 (build 22631)": the registry still says "Windows 10" on
    /// Windows 11, whose builds start at 22000.
    fn os_name() -> String {
        let build = current_version("CurrentBuild");
        let mut product = current_version("ProductName").unwrap_or_else(|| "Windows".into());
        if build.as_deref().and_then(|b| b.parse::<u32>().ok()).is_some_and(|b| b >= 22_000) {
            product = product.replace("Windows 10", "Windows 11");
        }
        let mut name = product;
        if let Some(version) = current_version("DisplayVersion") {
            name = format!("{name} {version}");
        }
        if let Some(build) = build {
            name = format!("{name} (build {build})");
        }
        name
    }

    fn host_name() -> String {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".into())
    }

    /// `DOMAIN\user` from the environment, the processor's name from the registry, memory
    /// and uptime from the system.
    fn machine() -> MachineFacts {
        let user = std::env::var("USERNAME").unwrap_or_default();
        let user_name = match std::env::var("USERDOMAIN") {
            Ok(domain) if !domain.is_empty() && !user.is_empty() => format!("{domain}\\{user}"),
            _ => user,
        };
        let cpu = machine_string(r"HARDWARE\DESCRIPTION\System\CentralProcessor\0", "ProcessorNameString")
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
        let mut memory = MEMORYSTATUSEX { dwLength: u32::try_from(std::mem::size_of::<MEMORYSTATUSEX>()).unwrap_or(0), ..Default::default() };
        // SAFETY: a plain call on a structure whose length field is set, as it requires.
        #[allow(unsafe_code)]
        let memory_bytes = if unsafe { GlobalMemoryStatusEx(&mut memory) }.is_ok() { memory.ullTotalPhys } else { 0 };
        // SAFETY: a plain call without arguments.
        #[allow(unsafe_code)]
        let uptime_ms = unsafe { GetTickCount64() };
        MachineFacts {
            user_name,
            cpu,
            cpu_threads: std::thread::available_parallelism().map_or(0, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            memory_bytes,
            uptime_secs: uptime_ms / 1000,
        }
    }

    /// `%LOCALAPPDATA%\Deskline`.
    fn log_dir() -> Option<PathBuf> {
        std::env::var_os("LOCALAPPDATA").map(|d| PathBuf::from(d).join("Deskline"))
    }

    /// `%USERPROFILE%\Downloads`, where Windows puts it unless the user moved it.
    fn downloads() -> Option<PathBuf> {
        deskline_net::files::downloads_dir()
    }

    /// `%APPDATA%\Deskline\support.toml`, then `%ProgramData%\Deskline\support.toml`.
    fn relay_files() -> Vec<PathBuf> {
        ["APPDATA", "ProgramData"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|d| PathBuf::from(d).join("Deskline").join("support.toml"))
            .collect()
    }

    /// Per-monitor DPI awareness (version 2 where Windows has it): capture and input then
    /// work in physical pixels on every monitor, whatever its scaling.
    fn prepare() {
        // SAFETY: plain calls, made before any window exists.
        #[allow(unsafe_code)]
        unsafe {
            if SetProcessDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2).is_err() {
                let _ = SetProcessDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE);
            }
        }
    }

    /// `WDA_EXCLUDEFROMCAPTURE` (Windows 10 2004 and later): the window stays on the end
    /// user's screen but is left out of every capture, ours included.
    fn keep_out_of_capture(window: &dyn HasWindowHandle) -> Result<(), String> {
        let handle = window.window_handle().map_err(|e| e.to_string())?;
        let RawWindowHandle::Win32(win32) = handle.as_raw() else {
            return Err("not a Win32 window".into());
        };
        let hwnd = HWND(win32.hwnd.get() as *mut core::ffi::c_void);
        // SAFETY: `hwnd` is this process's live top-level window.
        #[allow(unsafe_code)]
        unsafe { SetWindowDisplayAffinity(hwnd, WDA_EXCLUDEFROMCAPTURE) }.map_err(|e| e.to_string())
    }
}
