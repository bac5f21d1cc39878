//! The system's "open a file" dialog, for "Send a file".
//!
//! The dialog runs on a thread of its own (the system's dialog blocks its thread until the
//! user chooses), so the window keeps drawing — and keeps streaming — meanwhile; the window
//! asks [`FileChooser::chosen`] each frame. Which dialog: Windows' own, the desktop portal's
//! on Linux, zenity's where no portal runs (see the `rfd` crate). A desktop with none of them
//! gets no dialog (the same as cancelling it): the windows keep a field to type a path in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use eframe::egui;
use raw_window_handle::{
    DisplayHandle, HandleError, HasDisplayHandle, HasWindowHandle, RawDisplayHandle, RawWindowHandle, WindowHandle,
};

/// Shows a dialog and returns the file chosen (`None`: cancelled, or no dialog could be
/// shown). [`FileChooser::system`] shows the real one; a test gives its own.
pub type Pick = Arc<dyn Fn(rfd::FileDialog) -> Option<PathBuf> + Send + Sync>;

/// The window a dialog belongs to: the system keeps the dialog above it (the support app's
/// session bar stays above other windows, and would hide a dialog of no window's).
#[derive(Clone, Copy)]
pub struct Parent {
    window: RawWindowHandle,
    display: RawDisplayHandle,
}

impl Parent {
    /// The window of `frame` (the eframe window drawing the UI), if the platform tells it.
    pub fn of(frame: &(impl HasWindowHandle + HasDisplayHandle)) -> Option<Parent> {
        Some(Parent { window: frame.window_handle().ok()?.as_raw(), display: frame.display_handle().ok()?.as_raw() })
    }
}

// SAFETY (both): a `Parent` is taken from the app's own window, which lives as long as the
// app's event loop; a dialog still open when that ends goes with the process.
impl HasWindowHandle for Parent {
    #[allow(unsafe_code)] // raw-window-handle's only way to lend a stored handle
    fn window_handle(&self) -> Result<WindowHandle<'_>, HandleError> {
        Ok(unsafe { WindowHandle::borrow_raw(self.window) })
    }
}

impl HasDisplayHandle for Parent {
    #[allow(unsafe_code)] // as above
    fn display_handle(&self) -> Result<DisplayHandle<'_>, HandleError> {
        Ok(unsafe { DisplayHandle::borrow_raw(self.display) })
    }
}

/// One "open a file" dialog at a time, and the file it gave.
pub struct FileChooser {
    pick: Pick,
    /// The window the dialog belongs to (set by the app each frame; none in tests).
    pub parent: Option<Parent>,
    waiting: Option<mpsc::Receiver<Option<PathBuf>>>,
}

impl Default for FileChooser {
    fn default() -> FileChooser {
        FileChooser::system()
    }
}

impl FileChooser {
    /// The system's dialog.
    #[must_use]
    pub fn system() -> FileChooser {
        FileChooser::with(Arc::new(rfd::FileDialog::pick_file))
    }

    /// Dialogs shown by `pick`.
    #[must_use]
    pub fn with(pick: Pick) -> FileChooser {
        FileChooser { pick, parent: None, waiting: None }
    }

    /// Is a dialog open?
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.waiting.is_some()
    }

    /// Opens the dialog titled `title` in `folder` (unless one is open already); `ctx` is
    /// repainted when the user has chosen.
    pub fn open(&mut self, ctx: &egui::Context, title: &str, folder: Option<&Path>) {
        if self.waiting.is_some() {
            return;
        }
        let mut dialog = rfd::FileDialog::new().set_title(title);
        if let Some(folder) = folder.filter(|f| f.is_dir()) {
            dialog = dialog.set_directory(folder);
            // rfd hands zenity the file name only (not the folder): a name ending in "/"
            // opens zenity in that folder. (The portal ignores the name when opening.)
            #[cfg(target_os = "linux")]
            {
                dialog = dialog.set_file_name(format!("{}/", folder.display()));
            }
        }
        if let Some(parent) = &self.parent {
            dialog = dialog.set_parent(parent);
        }
        let (chosen, waiting) = mpsc::channel();
        let (pick, ctx) = (self.pick.clone(), ctx.clone());
        let shown = std::thread::Builder::new().name("file dialog".into()).spawn(move || {
            let _ = chosen.send(pick(dialog));
            ctx.request_repaint();
        });
        if shown.is_ok() {
            self.waiting = Some(waiting);
        }
    }

    /// The file chosen in the dialog, once, when the user has chosen one; `None` while it is
    /// open, after it was cancelled, and when none was opened.
    pub fn chosen(&mut self) -> Option<PathBuf> {
        let answer = self.waiting.as_ref()?.try_recv();
        match answer {
            Err(mpsc::TryRecvError::Empty) => None,
            Ok(path) => {
                self.waiting = None;
                path
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                self.waiting = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_file_is_given_once_and_a_cancel_gives_none() {
        let ctx = egui::Context::default();
        let mut chooser = FileChooser::with(Arc::new(|_| Some(PathBuf::from("/tmp/report.txt"))));
        assert_eq!(chooser.chosen(), None, "nothing before a dialog");
        chooser.open(&ctx, "Send a file", None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let chosen = loop {
            if let Some(path) = chooser.chosen() {
                break path;
            }
            assert!(chooser.is_open() && std::time::Instant::now() < deadline, "the dialog's answer never came");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(chosen, PathBuf::from("/tmp/report.txt"));
        assert!(!chooser.is_open());
        assert_eq!(chooser.chosen(), None, "given once");

        let mut cancelled = FileChooser::with(Arc::new(|_| None));
        cancelled.open(&ctx, "Send a file", None);
        while cancelled.is_open() {
            assert_eq!(cancelled.chosen(), None);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
