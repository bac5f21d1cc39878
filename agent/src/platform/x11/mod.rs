//! Linux with X11: capture with scrap (MIT-SHM) and x11rb (monitors, DAMAGE, the cursor),
//! input with enigo (XTEST), text typed with the end user's own layout.

mod desktop;
mod inject;
pub mod keymap;
pub mod typing;

pub use desktop::{Desktop, Grabber};
pub use inject::EnigoSink as Input;

use deskline_protocol::MachineFacts;
use std::path::PathBuf;

/// The processor's model from `/proc/cpuinfo` (`model name` on x86, `Model` or `Hardware` on
/// ARM boards), or the architecture.
fn cpu_model(cpuinfo: &str) -> String {
    ["model name", "Model", "Hardware"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// The name of the user running this process, from `/etc/passwd` (when the environment does
/// not say: a process started by a service manager).
fn user_of_this_process() -> String {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return String::new() };
    user_name_of(&std::fs::read_to_string("/etc/passwd").unwrap_or_default(), uid)
}

/// The name of `uid` in a passwd file (`name:x:uid:…`).
fn user_name_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .find_map(|l| {
            let mut fields = l.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_default()
}

/// `MemTotal` from `/proc/meminfo`, in bytes (0 when missing).
fn memory_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

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

    /// From the environment and `/proc` (Linux-wide, not X11's).
    fn machine() -> MachineFacts {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        MachineFacts {
            user_name: std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| user_of_this_process()),
            cpu: cpu_model(&read("/proc/cpuinfo")),
            cpu_threads: std::thread::available_parallelism().map_or(0, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            memory_bytes: memory_total(&read("/proc/meminfo")),
            uptime_secs: read("/proc/uptime").split_whitespace().next().and_then(|s| s.parse::<f64>().ok()).map_or(0, |s| s as u64),
        }
    }

    /// `$XDG_STATE_HOME/deskline` (`~/.local/state/deskline`).
    fn log_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("deskline"))
    }

    /// `XDG_DOWNLOAD_DIR` as `xdg-user-dirs` keeps it (`~/.config/user-dirs.dirs`, in the
    /// user's language), else `~/Downloads`.
    fn downloads() -> Option<PathBuf> {
        deskline_net::files::downloads_dir()
    }

    /// `$XDG_CONFIG_HOME/deskline/support.toml` (`~/.config/…`), then `/etc/deskline/support.toml`.
    fn relay_files() -> Vec<PathBuf> {
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        user.map(|d| d.join("deskline/support.toml")).into_iter().chain([PathBuf::from("/etc/deskline/support.toml")]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_give_the_processor_and_the_memory() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz\n";
        assert_eq!(cpu_model(x86), "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz");
        let arm = "processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        assert_eq!(cpu_model(arm), "Raspberry Pi 4 Model B Rev 1.4");
        assert_eq!(cpu_model(""), std::env::consts::ARCH);
        assert_eq!(memory_total("MemTotal:       16318412 kB\nMemFree:         1234 kB\n"), 16_318_412 * 1024);
        assert_eq!(memory_total("garbage"), 0);
        let passwd = "root:x:0:0:root:/root:/bin/bash\nada:x:1000:1000:Ada,,,:/home/ada:/bin/bash\n";
        assert_eq!((user_name_of(passwd, 1000), user_name_of(passwd, 0), user_name_of(passwd, 7)), ("ada".into(), "root".into(), String::new()));
    }
}
