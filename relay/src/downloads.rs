//! The support apps a relay offers on invite pages: one build per end user's system.
//!
//! Each build's system is read from the file itself (ELF, PE or Mach-O header), not from its
//! name, so an operator cannot offer a Linux file as the Windows download by a typo. The
//! invite page offers the build for the visitor's system first (from the browser's
//! User-Agent) and lists the others.

use anyhow::{Context as _, bail};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// A system the support app is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux (x86_64), an ELF executable.
    Linux,
    /// Windows (x86_64), a PE executable.
    Windows,
    /// macOS, a Mach-O executable.
    MacOs,
}

impl Platform {
    /// Every platform, in the order the invite page lists them.
    pub const ALL: [Platform; 3] = [Platform::Windows, Platform::MacOs, Platform::Linux];

    /// The platform an executable is for, from its first bytes; `None` for anything else.
    #[must_use]
    pub fn of_executable(head: &[u8]) -> Option<Platform> {
        match head {
            [0x7f, b'E', b'L', b'F', ..] => Some(Platform::Linux),
            [b'M', b'Z', ..] => Some(Platform::Windows),
            [0xcf, 0xfa, 0xed, 0xfe, ..] | [0xfe, 0xed, 0xfa, 0xcf, ..] | [0xca, 0xfe, 0xba, 0xbe, ..] => Some(Platform::MacOs),
            _ => None,
        }
    }

    /// The visitor's platform, from the browser's User-Agent (`None`: a phone, or unknown).
    #[must_use]
    pub fn of_user_agent(user_agent: &str) -> Option<Platform> {
        if user_agent.contains("Android") || user_agent.contains("iPhone") || user_agent.contains("iPad") {
            None
        } else if user_agent.contains("Windows") {
            Some(Platform::Windows)
        } else if user_agent.contains("Macintosh") || user_agent.contains("Mac OS X") {
            Some(Platform::MacOs)
        } else if user_agent.contains("Linux") || user_agent.contains("X11") {
            Some(Platform::Linux)
        } else {
            None
        }
    }

    /// The name end users know it by.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Platform::Linux => "Linux",
            Platform::Windows => "Windows",
            Platform::MacOs => "macOS",
        }
    }

    /// Its part of a download's path (`/s/TOKEN/download/windows`).
    #[must_use]
    pub const fn slug(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
            Platform::MacOs => "macos",
        }
    }

    /// The platform a path segment names.
    #[must_use]
    pub fn from_slug(slug: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.slug() == slug)
    }

    /// The file name the app is downloaded as.
    #[must_use]
    pub const fn download_name(self) -> &'static str {
        match self {
            Platform::Windows => "deskline-support.exe",
            Platform::Linux | Platform::MacOs => "deskline-support",
        }
    }

    /// How to start it once downloaded (HTML).
    #[must_use]
    pub const fn how_to_run(self) -> &'static str {
        match self {
            Platform::Windows => "Open <code>deskline-support.exe</code> from your Downloads.",
            Platform::Linux | Platform::MacOs => {
                "Run it: <code>chmod +x deskline-support &amp;&amp; ./deskline-support</code>."
            }
        }
    }
}

/// The builds a relay offers, at most one per platform.
#[derive(Debug, Clone, Default)]
pub struct SupportApps {
    builds: Vec<(Platform, PathBuf)>,
}

impl SupportApps {
    /// The builds at these paths; each must be an executable for a known platform, one per
    /// platform.
    pub fn from_paths(paths: &[PathBuf]) -> anyhow::Result<SupportApps> {
        let mut apps = SupportApps::default();
        for path in paths {
            let platform = platform_of(path)?
                .with_context(|| format!("--agent-binary {}: not a Linux, Windows or macOS executable", path.display()))?;
            if let Some(other) = apps.path_for(platform) {
                bail!("--agent-binary {} and {} are both for {}", other.display(), path.display(), platform.name());
            }
            apps.builds.push((platform, path.clone()));
        }
        Ok(apps)
    }

    /// What lies beside the relay's own executable: `deskline-agent` and `deskline-agent.exe`,
    /// where present and recognised.
    #[must_use]
    pub fn beside(dir: &Path) -> SupportApps {
        let candidates: Vec<PathBuf> =
            ["deskline-agent", "deskline-agent.exe"].iter().map(|name| dir.join(name)).filter(|p| p.is_file()).collect();
        SupportApps::from_paths(&candidates).unwrap_or_default()
    }

    /// No build to offer?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.builds.is_empty()
    }

    /// The build for this platform.
    #[must_use]
    pub fn path_for(&self, platform: Platform) -> Option<&Path> {
        self.builds.iter().find(|(p, _)| *p == platform).map(|(_, path)| path.as_path())
    }

    /// The platforms offered, in the invite page's order.
    pub fn platforms(&self) -> impl Iterator<Item = Platform> + '_ {
        Platform::ALL.into_iter().filter(|p| self.path_for(*p).is_some())
    }

    /// The build to offer first to a visitor with this User-Agent: theirs if offered, else the
    /// first one offered.
    #[must_use]
    pub fn best_for(&self, user_agent: Option<&str>) -> Option<Platform> {
        let theirs = user_agent.and_then(Platform::of_user_agent).filter(|p| self.path_for(*p).is_some());
        theirs.or_else(|| self.platforms().next())
    }

    /// Every build with its platform (for the operator's start-up message).
    pub fn builds(&self) -> impl Iterator<Item = (Platform, &Path)> {
        self.builds.iter().map(|(p, path)| (*p, path.as_path()))
    }
}

fn platform_of(path: &Path) -> anyhow::Result<Option<Platform>> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).with_context(|| format!("--agent-binary {}", path.display()))?;
    let read = file.read(&mut head).with_context(|| format!("reading {}", path.display()))?;
    Ok(Platform::of_executable(&head[..read]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_read_from_the_file_and_the_browser() {
        assert_eq!(Platform::of_executable(b"\x7fELF\x02"), Some(Platform::Linux));
        assert_eq!(Platform::of_executable(b"MZ\x90\x00"), Some(Platform::Windows));
        assert_eq!(Platform::of_executable(&[0xcf, 0xfa, 0xed, 0xfe]), Some(Platform::MacOs));
        assert_eq!(Platform::of_executable(b"#!/bin/sh"), None);
        assert_eq!(Platform::of_executable(b""), None);
        let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
        let linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36";
        assert_eq!(Platform::of_user_agent(windows), Some(Platform::Windows));
        assert_eq!(Platform::of_user_agent(linux), Some(Platform::Linux));
        assert_eq!(Platform::of_user_agent(mac), Some(Platform::MacOs));
        assert_eq!(Platform::of_user_agent(android), None);
        for p in Platform::ALL {
            assert_eq!(Platform::from_slug(p.slug()), Some(p));
        }
    }

    #[test]
    fn builds_are_checked_and_the_visitors_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let linux = dir.path().join("agent");
        let windows = dir.path().join("agent.exe");
        let text = dir.path().join("notes.txt");
        std::fs::write(&linux, b"\x7fELF rest").unwrap();
        std::fs::write(&windows, b"MZ rest").unwrap();
        std::fs::write(&text, b"hello").unwrap();
        let apps = SupportApps::from_paths(&[linux.clone(), windows.clone()]).unwrap();
        assert_eq!(apps.best_for(Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")), Some(Platform::Windows));
        assert_eq!(apps.best_for(Some("Mozilla/5.0 (X11; Linux x86_64)")), Some(Platform::Linux));
        assert_eq!(apps.best_for(Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)")), Some(Platform::Windows), "no macOS build: the first offered");
        assert_eq!(apps.best_for(None), Some(Platform::Windows));
        assert_eq!(apps.platforms().collect::<Vec<_>>(), [Platform::Windows, Platform::Linux]);
        let err = SupportApps::from_paths(&[text]).unwrap_err().to_string();
        assert!(err.contains("not a Linux, Windows or macOS executable"), "{err}");
        let err = SupportApps::from_paths(&[linux.clone(), linux]).unwrap_err().to_string();
        assert!(err.contains("both for Linux"), "{err}");
        assert!(SupportApps::default().best_for(None).is_none());
    }
}
