//! `support.toml`: the help desk's relay, for a support app installed on the machine (the
//! `deskline-support` package, or a copy an IT department deploys) rather than downloaded
//! from an invite page with the relay written into it.
//!
//! ```toml
//! relay = "desk.example.org:4433"
//! fingerprint = "3F:0A:…"
//! ```
//!
//! `deskline support-config` prints this file for a relay (here, so the CLI that writes it and
//! the app that reads it share one shape). The app looks for it where the platform keeps settings (on Linux `~/.config/deskline/support.toml`, then
//! `/etc/deskline/support.toml`; on Windows `%APPDATA%\Deskline`, then `%ProgramData%\Deskline`);
//! a link or `--relay`/`--fingerprint` win over it.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The relay a support app connects to when no link names one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFile {
    /// The relay's QUIC address, `host:port`.
    pub relay: String,
    /// The SHA-256 fingerprint of the relay's certificate, pinned on connect.
    pub fingerprint: String,
}

/// Why a `support.toml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RelayFileError {
    /// It exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a valid support.toml (the message names the line).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

impl RelayFile {
    /// Reads one file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, lacks a key, has an unknown one, or its
    /// fingerprint is not a SHA-256 fingerprint.
    pub fn read(path: &Path) -> Result<RelayFile, RelayFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| RelayFileError::Read { path: path.to_owned(), source })?;
        let invalid = |message: String| RelayFileError::Invalid { path: path.to_owned(), message };
        let file: RelayFile = toml::from_str(&text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        crate::tls::parse_fingerprint(&file.fingerprint).map_err(|e| invalid(format!("fingerprint: {e}")))?;
        if !file.relay.contains(':') {
            return Err(invalid(format!("relay: {:?} is not host:port", file.relay)));
        }
        Ok(file)
    }

    /// The first of `candidates` that exists, read; `None` when none does.
    ///
    /// # Errors
    /// The first existing file is unusable (a later one is not tried: a broken file the
    /// administrator wrote should be noticed, not silently passed over).
    pub fn find(candidates: &[PathBuf]) -> Result<Option<RelayFile>, RelayFileError> {
        match candidates.iter().find(|p| p.exists()) {
            Some(path) => RelayFile::read(path).map(Some),
            None => Ok(None),
        }
    }

    /// The file's text, as `deskline support-config` prints it.
    #[must_use]
    pub fn to_toml(&self, organisation: &str) -> String {
        format!(
            "# Deskline support app: the relay of {organisation}.\n\
             # Save as /etc/deskline/support.toml (Linux) or %ProgramData%\\Deskline\\support.toml (Windows).\n\
             relay = {:?}\nfingerprint = {:?}\n",
            self.relay, self.fingerprint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn what_support_config_prints_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = RelayFile { relay: "desk.example.org:4433".into(), fingerprint: FINGERPRINT.into() };
        let path = write(dir.path(), "support.toml", &file.to_toml("Acme \"IT\""));
        assert_eq!(RelayFile::read(&path).unwrap(), file);
    }

    #[test]
    fn the_first_existing_file_wins_and_none_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        assert!(RelayFile::find(std::slice::from_ref(&missing)).unwrap().is_none());
        let system = write(dir.path(), "system.toml", &format!("relay = \"b:2\"\nfingerprint = \"{FINGERPRINT}\"\n"));
        let user = write(dir.path(), "user.toml", &format!("relay = \"a:1\"\nfingerprint = \"{FINGERPRINT}\"\n"));
        assert_eq!(RelayFile::find(&[missing.clone(), user, system.clone()]).unwrap().unwrap().relay, "a:1");
        assert_eq!(RelayFile::find(&[missing, system]).unwrap().unwrap().relay, "b:2");
    }

    #[test]
    fn bad_files_are_errors_naming_the_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (format!("relay = \"a:1\"\nfingerprint = \"{FINGERPRINT}\"\nport = 3\n"), "unknown field `port`"),
            ("relay = \"a:1\"\n".to_owned(), "missing field `fingerprint`"),
            ("relay = \"a:1\"\nfingerprint = \"12:34\"\n".to_owned(), "fingerprint"),
            (format!("relay = \"nohost\"\nfingerprint = \"{FINGERPRINT}\"\n"), "not host:port"),
            ("relay = a:1\n".to_owned(), "line 1"),
        ];
        for (text, expected) in cases {
            let path = write(dir.path(), "support.toml", &text);
            let e = RelayFile::find(&[path]).unwrap_err().to_string();
            assert!(e.contains("support.toml") && e.contains(expected), "{text:?} gave {e:?}");
        }
    }
}
