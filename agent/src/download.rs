//! The session link a downloaded support app carries at the end of its own file (see
//! `deskline_protocol::embed`): started without `--link` or `--pin`, the app joins that session.

use deskline_protocol::embed::{MAX_TRAILER_BYTES, embedded_link};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

/// The link the executable at `path` carries, if any.
///
/// # Errors
/// The file cannot be read, or its trailer is damaged.
pub fn carried_link(path: &Path) -> anyhow::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let tail_len = len.min(MAX_TRAILER_BYTES as u64);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(MAX_TRAILER_BYTES);
    file.take(tail_len).read_to_end(&mut tail)?;
    Ok(embedded_link(&tail).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_read_from_the_end_of_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        let mut bytes = vec![0x7f; 100_000];
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(carried_link(&path).unwrap(), None);
        bytes.extend(deskline_protocol::embed::link_trailer("https://desk.example/s/TOKEN").unwrap());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(carried_link(&path).unwrap().as_deref(), Some("https://desk.example/s/TOKEN"));
        // Damaged: the magic without a sensible length.
        std::fs::write(&path, deskline_protocol::embed::MAGIC).unwrap();
        assert!(carried_link(&path).unwrap_err().to_string().contains("damaged"));
    }
}
