//! Both ends of a file's stream, shared by the support app and the technician's CLI (the relay
//! only copies bytes between two such streams).
//!
//! The sender opens a bidirectional stream, writes the `FileData` head and exactly the offered
//! number of bytes, and finishes it; the receiver writes them to a hidden partial file beside
//! the final one, hashing as it goes, and only when the size and the SHA-256 match the offer
//! renames it to its final name (never over an existing file), then answers with a
//! `FileResult`. A broken or wrong transfer removes the partial file: nothing is ever left
//! under the final name that is not the whole, checked file.

use crate::NetError;
use crate::framed::{FILE_PRIORITY, read_head, write_head};
use deskline_protocol::{FileData, FileOffer, FileResult, Message};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt as _;

/// Bytes read from a file or a stream at once.
const CHUNK: usize = 256 * 1024;

/// A file's size and SHA-256, read from disk (on a blocking thread).
///
/// # Errors
/// The file cannot be read.
pub async fn size_and_hash(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)?;
        Ok((size, hasher.finalize().into()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The file name a path ends with, if it is one a receiver accepts.
#[must_use]
pub fn plain_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.to_owned();
    deskline_protocol::is_plain_file_name(&name).then_some(name)
}

/// The user's Downloads folder: on Windows `%USERPROFILE%\Downloads`; elsewhere the XDG one
/// (`XDG_DOWNLOAD_DIR` in `user-dirs.dirs`, translated on localised desktops), else
/// `~/Downloads`. Where received files go unless the user picks another folder.
#[must_use]
pub fn downloads_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("USERPROFILE").map(|d| PathBuf::from(d).join("Downloads"));
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let config = std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from);
    let named = std::fs::read_to_string(config.join("user-dirs.dirs")).ok().and_then(|text| {
        text.lines().find_map(|line| {
            let value = line.trim().strip_prefix("XDG_DOWNLOAD_DIR=")?.trim_matches('"');
            Some(match value.strip_prefix("$HOME") {
                Some(rest) => home.join(rest.trim_start_matches('/')),
                None => PathBuf::from(value),
            })
        })
    });
    Some(named.unwrap_or_else(|| home.join("Downloads")))
}

/// Where to save `name` in `dir` without replacing anything: `name`, else `stem (1).ext`,
/// `stem (2).ext`, ...
#[must_use]
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (1u32..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Sends an accepted file: opens its stream on `connection`, writes the head and the file's
/// bytes (`progress` gets the bytes sent so far), and returns the receiver's result.
///
/// # Errors
/// The file cannot be read, changed size, or the connection failed.
pub async fn send(
    connection: &quinn::Connection,
    offer: &FileOffer,
    path: &Path,
    mut progress: impl FnMut(u64),
) -> Result<FileResult, NetError> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.set_priority(FILE_PRIORITY)?;
    write_head(&mut send, &Message::FileData(FileData { transfer: offer.transfer })).await?;
    let mut file = tokio::fs::File::open(path).await.map_err(|e| NetError::Unexpected(format!("{}: {e}", path.display())))?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(|e| NetError::Unexpected(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        sent += n as u64;
        if sent > offer.size {
            break;
        }
        send.write_all(&buf[..n]).await?;
        progress(sent);
    }
    if sent != offer.size {
        let _ = send.reset(1u32.into());
        return Err(NetError::Unexpected(format!("{} changed while it was sent ({sent} bytes, {} offered)", path.display(), offer.size)));
    }
    send.finish()?;
    match read_head(&mut recv).await? {
        Message::FileResult(result) if result.transfer == offer.transfer => Ok(result),
        other => Err(NetError::Unexpected(format!("{other:?} instead of the file's result"))),
    }
}

/// The hidden partial file beside `dest` while it arrives.
fn partial_path(dest: &Path, transfer: u64) -> PathBuf {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dest.with_file_name(format!(".{name}.{transfer:016x}.part"))
}

/// Receives an accepted file on its stream (after its head was read): writes it beside `dest`,
/// checks size and SHA-256 against `offer`, renames it to `dest` (or the next free name if
/// `dest` appeared meanwhile), answers the sender, and returns the result (`message` is the
/// saved file's name, or why nothing was saved). `progress` gets the bytes received so far.
pub async fn receive(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    offer: &FileOffer,
    dest: &Path,
    progress: impl FnMut(u64),
) -> (FileResult, Option<PathBuf>) {
    let partial = partial_path(dest, offer.transfer);
    let outcome = write_checked(&mut recv, offer, &partial, progress).await;
    let (result, saved) = match outcome {
        Ok(()) => {
            let dir = dest.parent().unwrap_or(Path::new("."));
            let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or(&offer.name);
            let final_path = free_path(dir, name);
            match tokio::fs::rename(&partial, &final_path).await {
                Ok(()) => {
                    let shown = final_path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    (FileResult { transfer: offer.transfer, saved: true, message: shown }, Some(final_path))
                }
                Err(e) => (FileResult { transfer: offer.transfer, saved: false, message: format!("cannot save it: {e}") }, None),
            }
        }
        Err(why) => (FileResult { transfer: offer.transfer, saved: false, message: why }, None),
    };
    if saved.is_none() {
        let _ = recv.stop(1u32.into());
        let _ = tokio::fs::remove_file(&partial).await;
    }
    if write_head(&mut send, &Message::FileResult(result.clone())).await.is_ok() {
        let _ = send.finish();
        // The result must reach the sender before the stream is dropped.
        let _ = send.stopped().await;
    }
    (result, saved)
}

/// Chunks waiting for the writer thread: QUIC hands over about a packet at a time, so this is
/// a few hundred KB at most; when the disk is slower, the stream's flow control slows the
/// sender.
const WRITE_QUEUE: usize = 256;

async fn write_checked(recv: &mut quinn::RecvStream, offer: &FileOffer, partial: &Path, mut progress: impl FnMut(u64)) -> Result<(), String> {
    // The file is written and hashed on a thread of its own: a `tokio::fs` write per chunk
    // (tens of thousands per file, each a blocking-pool task) stalled a transfer for good in a
    // test where control was taken back meanwhile (the write never ran).
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(partial).map_err(|e| format!("cannot write it: {e}"))?;
    let (chunks, mut queue) = tokio::sync::mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
    let (written, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("file-writer".into())
        .spawn(move || {
            use std::io::Write as _;
            let mut file = std::io::BufWriter::with_capacity(CHUNK, file);
            let mut hasher = Sha256::new();
            let mut result = Ok(());
            while let Some(chunk) = queue.blocking_recv() {
                hasher.update(&chunk);
                if let Err(e) = file.write_all(&chunk) {
                    result = Err(e);
                    break;
                }
            }
            let result = result
                .and_then(|()| file.into_inner().map_err(std::io::IntoInnerError::into_error))
                .and_then(|file| file.sync_all())
                .map(|()| <[u8; 32]>::from(hasher.finalize()));
            let _ = written.send(result);
        })
        .map_err(|e| format!("cannot write it: {e}"))?;
    let mut got = 0u64;
    let mut failed = None;
    loop {
        match recv.read_chunk(CHUNK, true).await {
            Err(e) => failed = Some(format!("the transfer broke off: {e}")),
            Ok(None) => {}
            Ok(Some(chunk)) => {
                got += chunk.bytes.len() as u64;
                if got > offer.size {
                    failed = Some(format!("more than the {} bytes offered arrived", offer.size));
                } else if chunks.send(chunk.bytes).await.is_ok() {
                    progress(got);
                    continue;
                }
                // (A closed queue: the writer stopped on an error, reported below.)
            }
        }
        break;
    }
    // Whatever happened, the writer has closed the file before anything is decided (a file
    // still open cannot be removed on Windows).
    drop(chunks);
    let written = done.await.map_err(|_| "cannot write it: the writer stopped".to_owned())?;
    if let Some(why) = failed {
        return Err(why);
    }
    let hash = written.map_err(|e| format!("cannot write it: {e}"))?;
    if got != offer.size {
        return Err(format!("the transfer broke off after {got} of {} bytes", offer.size));
    }
    if hash != offer.sha256 {
        return Err("its SHA-256 does not match the sender's: damaged on the way".into());
    }
    Ok(())
}

/// Reads a file stream's head: the transfer it carries.
///
/// # Errors
/// Anything but a `FileData` head.
pub async fn read_file_head(recv: &mut quinn::RecvStream) -> Result<u64, NetError> {
    match read_head(recv).await? {
        Message::FileData(FileData { transfer }) => Ok(transfer),
        other => Err(NetError::Unexpected(format!("{other:?} at the head of a file stream"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_name_never_replaces_a_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(free_path(dir.path(), "report.pdf"), dir.path().join("report.pdf"));
        std::fs::write(dir.path().join("report.pdf"), b"x").expect("written");
        assert_eq!(free_path(dir.path(), "report.pdf"), dir.path().join("report (1).pdf"));
        std::fs::write(dir.path().join("report (1).pdf"), b"x").expect("written");
        assert_eq!(free_path(dir.path(), "report.pdf"), dir.path().join("report (2).pdf"));
        std::fs::write(dir.path().join("README"), b"x").expect("written");
        assert_eq!(free_path(dir.path(), "README"), dir.path().join("README (1)"));
        std::fs::write(dir.path().join(".bashrc"), b"x").expect("written");
        assert_eq!(free_path(dir.path(), ".bashrc"), dir.path().join(".bashrc (1)"));
    }

    #[test]
    fn only_plain_names_are_taken_from_paths() {
        assert_eq!(plain_name(Path::new("/tmp/report.pdf")).as_deref(), Some("report.pdf"));
        assert_eq!(plain_name(Path::new("/")), None);
        assert_eq!(plain_name(Path::new("a/..")), None);
    }
}
