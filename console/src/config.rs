//! Where the CLI keeps its login: `$XDG_CONFIG_HOME/deskline/cli.json` (or
//! `~/.config/deskline/cli.json`), readable by its owner only since it holds a bearer token.
//!
//! The path is computed by hand rather than with a directories crate: the rule is two lines on
//! the platforms this CLI targets, and `DESKLINE_CONFIG` overrides it for scripts and tests.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The saved login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The relay's base URL.
    pub server: String,
    /// The bearer token.
    pub token: String,
    /// The relay certificate's pinned SHA-256 fingerprint, if pinned.
    pub pin_cert: Option<String>,
}

/// The configuration file's path.
pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DESKLINE_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("deskline").join("cli.json"))
}

/// Loads the saved login.
pub fn load() -> anyhow::Result<Saved> {
    let path = path()?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("not logged in (no {}); run `deskline login` first", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged; run `deskline login` again", path.display()))
}

/// Saves the login with mode 0600 (written to a new file, then renamed over the old one).
pub fn save(saved: &Saved) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(saved)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Deletes the saved login (signing out); the path it had, if there was one.
pub fn remove() -> anyhow::Result<Option<PathBuf>> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
    }
}
