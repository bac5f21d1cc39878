//! # deskline-widgets
//!
//! egui pieces the end user's support app and the technician's viewer window share, so that
//! both behave the same: the chat panel's lines and its field, and the system's file dialog.

mod chooser;
pub use chooser::{FileChooser, Parent, Pick};

use deskline_protocol::limits::MAX_CHAT_TEXT_BYTES;
use deskline_protocol::{ChatLine, Timestamp};
use eframe::egui;

/// A session's chat as a window keeps it: the lines received, what is being written, and
/// whether the panel is open.
#[derive(Default)]
pub struct Chat {
    /// Lines received, oldest first (at most [`Chat::KEEP`]).
    pub lines: Vec<ChatLine>,
    /// What is being written.
    pub draft: String,
    /// The panel shows.
    pub open: bool,
    /// Put the keyboard in the field at the next frame.
    pub focus: bool,
}

impl Chat {
    /// Lines kept in a window: the oldest go first (the session's history has them all).
    pub const KEEP: usize = 500;

    /// Keeps a line the relay sent.
    pub fn push(&mut self, line: ChatLine) {
        if self.lines.len() == Self::KEEP {
            self.lines.remove(0);
        }
        self.lines.push(line);
    }

    /// The lines, each under its sender (as `who` names them) and local time, as plain text
    /// (egui lays out what it is given: there is no markup to inject into), scrolled to the
    /// newest.
    pub fn show_lines(&self, ui: &mut egui::Ui, max_height: f32, empty: &str, who: impl Fn(&ChatLine) -> String) {
        egui::ScrollArea::vertical().max_height(max_height).stick_to_bottom(true).auto_shrink([false, true]).show(ui, |ui| {
            if self.lines.is_empty() {
                ui.weak(empty);
            }
            for line in &self.lines {
                ui.label(egui::RichText::new(format!("{}, {}", who(line), local_time(line.at))).strong());
                ui.label(line.text.as_str());
            }
        });
    }

    /// The field and its Send button; Enter sends too (and keeps the keyboard in the field).
    /// Returns the line to send, trimmed, never blank. `id` names the field (a window that
    /// forwards keys elsewhere asks whether it has the focus).
    pub fn show_field(&mut self, ui: &mut egui::Ui, id: egui::Id) -> Option<String> {
        let mut send = false;
        ui.horizontal(|ui| {
            let field = egui::TextEdit::singleline(&mut self.draft)
                .id(id)
                .hint_text("Write a message")
                // Characters, not bytes: the relay's byte limit refuses the rare longer line.
                .char_limit(MAX_CHAT_TEXT_BYTES / 4)
                .desired_width(ui.available_width() - 80.0);
            let field = ui.add(field);
            if std::mem::take(&mut self.focus) {
                field.request_focus();
            }
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                send = true;
                field.request_focus();
            }
            send |= ui.add_enabled(!self.draft.trim().is_empty(), egui::Button::new("Send")).clicked();
        });
        if !send || self.draft.trim().is_empty() {
            return None;
        }
        let text = std::mem::take(&mut self.draft);
        Some(text.trim().to_owned())
    }
}

/// "14:05" in this machine's time zone.
#[must_use]
pub fn local_time(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.0).map_or_else(String::new, |t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskline_protocol::ChatFrom;

    #[test]
    fn a_window_keeps_the_newest_lines() {
        let mut chat = Chat::default();
        for n in 0..Chat::KEEP + 3 {
            chat.push(ChatLine { from: ChatFrom::EndUser, at: Timestamp(0), text: n.to_string() });
        }
        assert_eq!(chat.lines.len(), Chat::KEEP);
        assert_eq!(chat.lines[0].text, "3");
        assert_eq!(local_time(Timestamp(0)).len(), 5, "HH:MM");
    }
}
