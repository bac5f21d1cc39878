//! The end user's clipboard, for the `clipboard` capability: text the controlling technician
//! copied is put on it, and text the end user copies goes to the technicians granted it.
//!
//! arboard does the platform work (X11 selections, the Windows clipboard). It has no change
//! notification, so a thread owns the clipboard and looks at it twice a second, but only while
//! a grant includes the clipboard: what was copied before the grant (or while it was taken
//! back) is never sent, only what is copied while it holds. The thread lives as long as the
//! connection, because on X11 the text it put on the clipboard is served by the process that
//! owns it: the end user can still paste it after the technician has gone.

use deskline_protocol::limits::MAX_CLIPBOARD_TEXT_BYTES;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the clipboard is looked at while watched: a copy reaches the technician within
/// this, at the cost of one clipboard read (no pixels) per look.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// What the clipboard thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipboardNews {
    /// The end user copied this text (not empty, within the limit).
    Copied(String),
    /// The end user copied text too long to send (its length in bytes).
    TooLong(usize),
    /// The system's clipboard cannot be used (no display, refused); nothing passes.
    Unavailable(String),
}

/// How long the connection waits for text to be on the clipboard before going on: the
/// technician's paste key usually follows the text at once, and must find it there.
const SET_WAIT: Duration = Duration::from_millis(250);

enum Command {
    Watch(bool),
    Set(String, tokio::sync::oneshot::Sender<()>),
}

/// The clipboard thread's handle; dropping it ends the thread.
#[derive(Debug)]
pub struct Clipboard {
    commands: std_mpsc::Sender<Command>,
}

impl Clipboard {
    /// Starts the thread (not yet watching).
    #[must_use]
    pub fn start(news: mpsc::UnboundedSender<ClipboardNews>) -> Clipboard {
        let (commands, orders) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("clipboard".into())
            .spawn(move || run(&orders, &news))
            .map_or_else(|e| tracing::warn!(error = %e, "no clipboard thread"), drop);
        Clipboard { commands }
    }

    /// Starts or stops looking for the end user's copies. Starting takes what is on the
    /// clipboard now as already seen.
    pub fn watch(&self, on: bool) {
        let _ = self.commands.send(Command::Watch(on));
    }

    /// Puts text on the clipboard (not reported back as a copy), waiting until it is there
    /// (at most [`SET_WAIT`]), so that input that follows pastes it.
    pub async fn set(&self, text: String) {
        let (done, set) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Set(text, done)).is_ok() {
            let _ = tokio::time::timeout(SET_WAIT, set).await;
        }
    }
}

fn run(orders: &std_mpsc::Receiver<Command>, news: &mpsc::UnboundedSender<ClipboardNews>) {
    let mut clipboard = match arboard::Clipboard::new() {
        Ok(c) => c,
        Err(e) => {
            let _ = news.send(ClipboardNews::Unavailable(e.to_string()));
            return;
        }
    };
    let mut watching = false;
    // The last text seen or set: only a different one is a copy.
    let mut last: Option<String> = None;
    loop {
        let wait = if watching { LOOK_EVERY } else { Duration::from_secs(3600) };
        match orders.recv_timeout(wait) {
            Ok(Command::Watch(on)) => {
                if on && !watching {
                    last = clipboard.get_text().ok();
                }
                watching = on;
            }
            Ok(Command::Set(text, done)) => {
                match clipboard.set_text(text.as_str()) {
                    Ok(()) => last = Some(text),
                    Err(e) => tracing::warn!(error = %e, "the technician's text could not be put on the clipboard"),
                }
                let _ = done.send(());
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if !watching {
                    continue;
                }
                // No text (empty, an image, nothing) is not a copy to report.
                let Ok(now) = clipboard.get_text() else { continue };
                if now.is_empty() || last.as_ref() == Some(&now) {
                    continue;
                }
                let report = if now.len() > MAX_CLIPBOARD_TEXT_BYTES {
                    ClipboardNews::TooLong(now.len())
                } else {
                    ClipboardNews::Copied(now.clone())
                };
                last = Some(now);
                if news.send(report).is_err() {
                    return;
                }
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
