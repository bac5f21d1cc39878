//! Linux with X11: capture with scrap (MIT-SHM) and x11rb (monitors, DAMAGE, the cursor),
//! input with enigo (XTEST), text typed with the end user's own layout.

mod desktop;
mod inject;
pub mod keymap;
pub mod typing;

pub use desktop::{Desktop, Grabber};
pub use inject::EnigoSink as Input;

use std::path::PathBuf;

/// The machine's facts, from the usual files.
pub struct Facts;

impl super::System for Facts {
    fn os_name() -> String {
        std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
            .unwrap_or_else(|| std::env::consts::OS.to_owned())
    }

    fn host_name() -> String {
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown".into())
    }

    /// `$XDG_STATE_HOME/deskline` (`~/.local/state/deskline`).
    fn log_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("deskline"))
    }

    /// `$XDG_CONFIG_HOME/deskline/support.toml` (`~/.config/…`), then `/etc/deskline/support.toml`.
    fn relay_files() -> Vec<PathBuf> {
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        user.map(|d| d.join("deskline/support.toml")).into_iter().chain([PathBuf::from("/etc/deskline/support.toml")]).collect()
    }
}
