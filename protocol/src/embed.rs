//! A support app download that carries its session: the relay appends the session's link to
//! the executable's bytes, and the app, started without a link or PIN, reads it from its own
//! file. Executable formats ignore bytes after the image, so the file still runs as it is.
//!
//! Layout of the end of the file: the link (UTF-8), its length (`u32`, little endian), then
//! [`MAGIC`]. A file without the magic carries no link; one whose trailer is malformed is
//! refused with a clear error rather than guessed at.

use crate::limits::MAX_EMBEDDED_LINK_BYTES;

/// The last bytes of a file that carries a link.
pub const MAGIC: [u8; 8] = *b"DESKLNK1";

/// How many bytes at the end of a file can hold the trailer: read this much and pass it to
/// [`embedded_link`].
pub const MAX_TRAILER_BYTES: usize = MAX_EMBEDDED_LINK_BYTES + 4 + MAGIC.len();

/// Why a link cannot be embedded or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The link is longer than [`MAX_EMBEDDED_LINK_BYTES`].
    #[error("the link is {0} bytes long (at most {MAX_EMBEDDED_LINK_BYTES})")]
    TooLong(usize),
    /// The trailer names a length the file cannot hold, or the link is not UTF-8.
    #[error("the link at the end of this file is damaged")]
    Damaged,
}

/// The bytes to append to the executable so it carries `link`.
///
/// # Errors
/// [`EmbedError::TooLong`].
pub fn link_trailer(link: &str) -> Result<Vec<u8>, EmbedError> {
    if link.len() > MAX_EMBEDDED_LINK_BYTES {
        return Err(EmbedError::TooLong(link.len()));
    }
    let mut trailer = Vec::with_capacity(link.len() + 4 + MAGIC.len());
    trailer.extend_from_slice(link.as_bytes());
    trailer.extend_from_slice(&u32::try_from(link.len()).map_err(|_| EmbedError::TooLong(link.len()))?.to_le_bytes());
    trailer.extend_from_slice(&MAGIC);
    Ok(trailer)
}

/// The link carried by a file whose last bytes are `tail` (at most [`MAX_TRAILER_BYTES`] are
/// needed), or `None` when it carries none.
///
/// # Errors
/// [`EmbedError::Damaged`].
pub fn embedded_link(tail: &[u8]) -> Result<Option<&str>, EmbedError> {
    let Some(rest) = tail.strip_suffix(&MAGIC) else { return Ok(None) };
    let (rest, len) = rest.split_at(rest.len().checked_sub(4).ok_or(EmbedError::Damaged)?);
    let len = usize::try_from(u32::from_le_bytes(len.try_into().map_err(|_| EmbedError::Damaged)?)).map_err(|_| EmbedError::Damaged)?;
    if len > MAX_EMBEDDED_LINK_BYTES || len > rest.len() {
        return Err(EmbedError::Damaged);
    }
    std::str::from_utf8(&rest[rest.len() - len..]).map(Some).map_err(|_| EmbedError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_link_comes_back_from_the_end_of_the_file() {
        let link = "https://desk.example/s/abc#quic=desk.example:4433&sha256=00";
        let mut file = b"\x7fELF the program itself".to_vec();
        file.extend(link_trailer(link).unwrap());
        let tail = &file[file.len().saturating_sub(MAX_TRAILER_BYTES)..];
        assert_eq!(embedded_link(tail), Ok(Some(link)));
    }

    #[test]
    fn a_plain_program_carries_nothing() {
        assert_eq!(embedded_link(b"\x7fELF just a program"), Ok(None));
        assert_eq!(embedded_link(b""), Ok(None));
    }

    #[test]
    fn damaged_trailers_and_long_links_are_refused() {
        assert_eq!(link_trailer(&"x".repeat(MAX_EMBEDDED_LINK_BYTES + 1)), Err(EmbedError::TooLong(MAX_EMBEDDED_LINK_BYTES + 1)));
        // A length beyond what precedes it.
        let mut file = b"abc".to_vec();
        file.extend(50u32.to_le_bytes());
        file.extend(MAGIC);
        assert_eq!(embedded_link(&file), Err(EmbedError::Damaged));
        // Only the magic.
        assert_eq!(embedded_link(&MAGIC), Err(EmbedError::Damaged));
        // Not UTF-8.
        let mut file = vec![0xff, 0xfe];
        file.extend(2u32.to_le_bytes());
        file.extend(MAGIC);
        assert_eq!(embedded_link(&file), Err(EmbedError::Damaged));
    }

    proptest! {
        #[test]
        fn any_tail_is_read_without_panicking(tail in proptest::collection::vec(any::<u8>(), 0..64), magic: bool) {
            let mut tail = tail;
            if magic {
                tail.extend(MAGIC);
            }
            let _ = embedded_link(&tail);
        }

        #[test]
        fn any_link_round_trips(link in "[ -~]{0,200}", prefix in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut file = prefix;
            file.extend(link_trailer(&link).unwrap());
            prop_assert_eq!(embedded_link(&file), Ok(Some(link.as_str())));
        }
    }
}
