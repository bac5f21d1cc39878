//! The native viewer window (eframe): the remote screen scaled to fit, an overlay with frame
//! rate, bitrate and latency, and — while this technician holds control — the mouse and
//! keyboard sent to the end user's machine.
//!
//! Keys travel as physical positions (W3C `KeyboardEvent.code`), so the end user's layout
//! decides the character; modifier changes are sent as their own key events. Text only
//! travels as text for characters a physical key cannot name (accents from dead keys, IMEs).
//!
//! A chat panel on the right (the Chat button; a line from someone else opens it) talks to the
//! end user and the other technicians; while its field has the keyboard, keys stay here
//! instead of going to the remote machine.
//!
//! With the clipboard granted, a paste into the picture (Ctrl+V) first puts the technician's
//! copied text on the end user's clipboard, then presses the keys, so the remote program pastes
//! it; the end user's copies land on the technician's clipboard. The system's copy, cut and
//! paste shortcuts reach the remote machine as keys either way.

use crate::viewer::{DecodedFrame, FileNews, ViewerCommand, ViewerUpdate};
use deskline_protocol::limits::MAX_CLIPBOARD_TEXT_BYTES;
use deskline_protocol::{Capabilities, ChatFrom, DisplayInfo, InputEvent, KeyCode, MouseButton, PauseReason, Press, TechnicianId};
use deskline_widgets::Chat;
use eframe::egui;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Pixels of scrolling that make one wheel notch on the end user's side.
const POINTS_PER_NOTCH: f32 = 50.0;

/// The viewer window's state.
pub struct ViewerWindow {
    commands: mpsc::UnboundedSender<ViewerCommand>,
    updates: mpsc::Receiver<ViewerUpdate>,
    me: TechnicianId,
    title: String,
    texture: Option<egui::TextureHandle>,
    frame_size: [usize; 2],
    controller: Option<TechnicianId>,
    /// What the end user allows this technician, and whether they ever allowed viewing (to
    /// tell "waiting for consent" from "stopped sharing").
    allowed: Capabilities,
    was_allowed: bool,
    /// Why the end user's picture stopped, while it is stopped.
    paused: Option<PauseReason>,
    /// The relay was lost and the viewer is joining again (until the next frame).
    reconnecting: bool,
    ended: Option<String>,
    meter: Meter,
    sent_modifiers: egui::Modifiers,
    last_pointer: Option<(u32, u32)>,
    /// The end user's displays (id, label) and the one shown.
    displays: Vec<(u32, String)>,
    display: u32,
    /// One remote pixel per screen pixel (scrolled) instead of the whole picture fitted.
    actual_size: bool,
    chat: Chat,
    /// Lines from others since the panel was last open.
    unread: usize,
    /// The last thing that happened on the clipboard, for the status bar.
    clipboard_note: Option<String>,
    files: WindowFiles,
}

/// Files in the window: the end user's offers waiting for an answer (the first is asked),
/// files on their way, the last result, and the "send a file" path while it is typed.
#[derive(Default)]
struct WindowFiles {
    offers: VecDeque<deskline_protocol::FileOffer>,
    moving: Vec<(u64, String, bool, u64, u64)>,
    note: Option<String>,
    path: Option<String>,
    /// The system's file dialog "Send a file…" opens (beside the field).
    chooser: deskline_widgets::FileChooser,
}

/// "2.0 MB", "12 KB".
fn size_text(bytes: u64) -> String {
    if bytes < 1024 * 1024 { format!("{} KB", (bytes / 1024).max(1)) } else { format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0)) }
}

/// The "send a file" field's id: keys typed into it are not sent to the remote machine.
fn files_field_id() -> egui::Id {
    egui::Id::unique("viewer-file-path")
}

/// The chat field's id: keys typed into it are not sent to the remote machine.
fn chat_field_id() -> egui::Id {
    egui::Id::unique("chat-field")
}

/// Key combinations the technician's own system would act on instead of sending (the web
/// console offers the same): pressed in order, released in reverse. Windows lets no program
/// send Ctrl+Alt+Del; X11 desktops receive it as keys.
pub const SPECIAL_KEYS: &[(&str, &[KeyCode])] = &[
    ("Ctrl+Alt+Del", &[KeyCode::ControlLeft, KeyCode::AltLeft, KeyCode::Delete]),
    ("Alt+Tab", &[KeyCode::AltLeft, KeyCode::Tab]),
    ("Windows / Super", &[KeyCode::MetaLeft]),
    ("Ctrl+Esc (Start menu)", &[KeyCode::ControlLeft, KeyCode::Escape]),
    ("Print Screen", &[KeyCode::PrintScreen]),
    ("Alt+F4", &[KeyCode::AltLeft, KeyCode::F4]),
];

/// The input events of one key combination.
#[must_use]
pub fn combination(keys: &[KeyCode]) -> Vec<InputEvent> {
    let down = keys.iter().map(|&code| InputEvent::Key { code, press: Press::Down, text: None });
    let up = keys.iter().rev().map(|&code| InputEvent::Key { code, press: Press::Up, text: None });
    down.chain(up).collect()
}

/// Frames of the last second, for the overlay.
#[derive(Default)]
struct Meter {
    recent: VecDeque<(Instant, usize, u64)>,
}

impl Meter {
    fn record(&mut self, frame: &DecodedFrame) {
        let now = Instant::now();
        self.recent.push_back((now, frame.bytes, frame.latency_us));
        while self.recent.front().is_some_and(|(t, _, _)| now.duration_since(*t) > Duration::from_secs(1)) {
            self.recent.pop_front();
        }
    }

    /// Frames per second, kilobits per second, median latency in milliseconds.
    fn summary(&self) -> (usize, u64, f64) {
        let bits: usize = self.recent.iter().map(|(_, b, _)| b * 8).sum();
        let mut latencies: Vec<u64> = self.recent.iter().map(|(_, _, l)| *l).collect();
        latencies.sort_unstable();
        let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
        (self.recent.len(), (bits / 1000) as u64, median as f64 / 1000.0)
    }
}

impl ViewerWindow {
    /// A window over a running viewer's channels.
    #[must_use]
    pub fn new(
        commands: mpsc::UnboundedSender<ViewerCommand>,
        updates: mpsc::Receiver<ViewerUpdate>,
        me: TechnicianId,
        title: String,
    ) -> ViewerWindow {
        ViewerWindow {
            commands,
            updates,
            me,
            title,
            texture: None,
            frame_size: [0, 0],
            controller: None,
            allowed: Capabilities::NONE,
            was_allowed: false,
            paused: None,
            reconnecting: false,
            ended: None,
            meter: Meter::default(),
            sent_modifiers: egui::Modifiers::NONE,
            last_pointer: None,
            displays: Vec::new(),
            display: 0,
            actual_size: false,
            chat: Chat::default(),
            unread: 0,
            clipboard_note: None,
            files: WindowFiles::default(),
        }
    }

    /// Shows "Send a file…"'s dialogs with `chooser` instead of the system's (tests).
    #[must_use]
    pub fn with_file_chooser(mut self, chooser: deskline_widgets::FileChooser) -> ViewerWindow {
        self.files.chooser = chooser;
        self
    }

    /// Sends a key combination, if this window controls the screen.
    fn send_keys(&self, keys: &[KeyCode]) {
        if self.in_control() {
            for event in combination(keys) {
                self.send(ViewerCommand::Input(event));
            }
        }
    }

    /// Starts showing display `current` (the relay sends the list of displays on joining).
    #[must_use]
    pub fn showing_display(mut self, current: u32) -> ViewerWindow {
        self.display = current;
        self
    }

    fn send(&self, command: ViewerCommand) {
        let _ = self.commands.send(command);
    }

    fn drain_updates(&mut self, ctx: &egui::Context) {
        // Only the newest frame is shown: frames that arrived since the last repaint are
        // counted for the overlay but not uploaded.
        let mut newest = None;
        while let Ok(update) = self.updates.try_recv() {
            match update {
                ViewerUpdate::Frame(frame) => {
                    self.reconnecting = false;
                    self.meter.record(&frame);
                    newest = Some(frame);
                }
                ViewerUpdate::Controller(holder) => self.controller = holder,
                ViewerUpdate::Displays(displays) => self.displays = display_labels(&displays),
                ViewerUpdate::Allowed(allowed) => {
                    self.was_allowed |= allowed.view();
                    self.allowed = allowed;
                }
                ViewerUpdate::Paused(reason) => self.paused = reason,
                ViewerUpdate::Chat(line) => {
                    if !matches!(line.from, ChatFrom::Technician { id, .. } if id == self.me) {
                        // Someone else wrote: the panel opens.
                        self.unread += usize::from(!self.chat.open);
                        self.chat.open = true;
                    }
                    self.chat.push(line);
                }
                ViewerUpdate::Clipboard(text) => {
                    self.clipboard_note = Some(format!("The end user copied {} characters: on your clipboard", text.chars().count()));
                    ctx.copy_text(text);
                }
                ViewerUpdate::File(news) => self.file_news(news),
                ViewerUpdate::Reconnecting(why) => {
                    tracing::info!(%why, "reconnecting to the relay");
                    self.reconnecting = true;
                }
                ViewerUpdate::Ended(reason) => {
                    self.ended = Some(reason.map_or_else(|| "you left the session".into(), |e| e.to_string()));
                }
            }
        }
        if let Some(frame) = newest {
            let image = egui::ColorImage::from_rgb([frame.width, frame.height], &frame.rgb);
            self.frame_size = [frame.width, frame.height];
            match &mut self.texture {
                Some(texture) => texture.set(image, egui::TextureOptions::LINEAR),
                None => self.texture = Some(ctx.load_texture("remote-screen", image, egui::TextureOptions::LINEAR)),
            }
        }
    }

    fn file_news(&mut self, news: FileNews) {
        match news {
            FileNews::Offered(offer) => self.files.offers.push_back(offer),
            FileNews::Progress { transfer, name, incoming, bytes, size } => {
                match self.files.moving.iter_mut().find(|m| m.0 == transfer) {
                    Some(moving) => moving.3 = bytes,
                    None => self.files.moving.push((transfer, name, incoming, bytes, size)),
                }
            }
            FileNews::Done { transfer, name, incoming, saved, message } => {
                self.files.moving.retain(|m| m.0 != transfer);
                self.files.note = Some(match (incoming, saved) {
                    (true, true) => format!("“{name}” saved as {message} (size and SHA-256 checked)"),
                    (false, true) => format!("“{name}” saved on the end user's computer"),
                    (true, false) => format!("“{name}” was not received: {message}"),
                    (false, false) => format!("“{name}” was not sent: {message}"),
                });
            }
        }
    }

    /// Files: the end user's offer (save in Downloads, or decline), files on their way, the
    /// last result, and Send a file (a path; or drop files on the window).
    fn files_bar(&mut self, ui: &mut egui::Ui) {
        let dropped: Vec<std::path::PathBuf> = ui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect());
        if self.allowed.files() {
            for path in dropped {
                self.send(ViewerCommand::SendFile(path));
            }
        }
        if let Some(offer) = self.files.offers.front().cloned() {
            ui.horizontal(|ui| {
                ui.label(format!("The end user sends you “{}” ({}).", offer.name, size_text(offer.size)));
                let downloads = deskline_net::files::downloads_dir();
                let save = ui.add_enabled(downloads.is_some(), egui::Button::new("Save in Downloads"));
                if save.clicked() {
                    self.files.offers.pop_front();
                    if let Some(dir) = downloads {
                        let _ = std::fs::create_dir_all(&dir);
                        self.send(ViewerCommand::AnswerFile { transfer: offer.transfer, save_in: Some(dir) });
                    }
                }
                if ui.button("Decline").clicked() {
                    self.files.offers.pop_front();
                    self.send(ViewerCommand::AnswerFile { transfer: offer.transfer, save_in: None });
                }
            });
        }
        for (_, name, incoming, bytes, size) in &self.files.moving {
            ui.horizontal(|ui| {
                ui.label(if *incoming { format!("Receiving “{name}”") } else { format!("Sending “{name}”") });
                let done = if *size == 0 { 0.0 } else { *bytes as f32 / *size as f32 };
                ui.add(egui::ProgressBar::new(done).desired_width(240.0).show_percentage());
            });
        }
        ui.horizontal(|ui| {
            if self.allowed.files() {
                match &mut self.files.path {
                    None => {
                        // The system's file dialog opens, and a field to type a path in (for
                        // a desktop that shows no dialog).
                        if ui.button("Send a file…").on_hover_text("Or drop files on this window").clicked() {
                            self.files.chooser.open(ui.ctx(), "Send a file to the end user", None);
                            self.files.path = Some(String::new());
                        }
                    }
                    Some(path) => {
                        if ui.add_enabled(!self.files.chooser.is_open(), egui::Button::new("Choose…")).clicked() {
                            self.files.chooser.open(ui.ctx(), "Send a file to the end user", None);
                        }
                        ui.label("or its path:");
                        let field = ui.add(egui::TextEdit::singleline(path).id(files_field_id()).hint_text("/path/to/file").desired_width(320.0));
                        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        if ui.button("Send").clicked() || enter {
                            let path = std::path::PathBuf::from(path.trim());
                            self.files.path = None;
                            self.send(ViewerCommand::SendFile(path));
                        } else if ui.button("Cancel").clicked() {
                            self.files.path = None;
                        }
                    }
                }
            }
            if let Some(note) = &self.files.note {
                ui.label(note);
            }
        });
    }

    fn in_control(&self) -> bool {
        self.controller == Some(self.me) && self.ended.is_none() && !self.reconnecting
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong(&self.title);
            ui.separator();
            let (fps, kbps, latency_ms) = self.meter.summary();
            ui.monospace(format!("{fps:>2} fps  {kbps:>6} kbit/s  latency {latency_ms:>5.1} ms"));
            ui.separator();
            if self.displays.len() > 1 {
                let current = self.displays.iter().find(|(id, _)| *id == self.display).map_or("display", |(_, l)| l.as_str());
                let mut chosen = self.display;
                egui::ComboBox::from_id_salt("display").selected_text(current).show_ui(ui, |ui| {
                    for (id, label) in &self.displays {
                        ui.selectable_value(&mut chosen, *id, label);
                    }
                });
                if chosen != self.display {
                    self.display = chosen;
                    self.send(ViewerCommand::SelectDisplay(chosen));
                }
                ui.separator();
            }
            let size = if self.actual_size { "Fit to window" } else { "1:1" };
            if ui.button(size).on_hover_text("Show the whole screen, or one remote pixel per pixel").clicked() {
                self.actual_size = !self.actual_size;
            }
            let chat = match (self.chat.open, self.unread) {
                (true, _) => "Hide chat".to_owned(),
                (false, 0) => "Chat".to_owned(),
                (false, n) => format!("Chat ({n} new)"),
            };
            if ui.button(chat).on_hover_text("Write to the end user and the other technicians").clicked() {
                self.chat.open = !self.chat.open;
                self.unread = 0;
            }
            let fullscreen = ui.input(|i| i.viewport().fullscreen.unwrap_or(false));
            if ui.button(if fullscreen { "Leave full screen" } else { "Full screen" }).clicked() {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Fullscreen(!fullscreen));
            }
            ui.separator();
            if let Some(ended) = &self.ended {
                ui.colored_label(egui::Color32::LIGHT_RED, ended);
            } else if self.reconnecting {
                ui.colored_label(egui::Color32::from_rgb(230, 170, 60), "Connection to the relay lost; reconnecting…");
            } else if !self.allowed.view() {
                let why = if self.was_allowed { "The end user stopped sharing" } else { "Waiting for the end user's consent" };
                ui.colored_label(egui::Color32::from_rgb(230, 170, 60), why);
            } else if let Some(reason) = self.paused {
                ui.colored_label(egui::Color32::from_rgb(230, 170, 60), format!("The picture stopped: {}", reason.describe()));
            } else if self.in_control() {
                ui.label("You control the remote screen");
                if self.allowed.clipboard() {
                    ui.label("· clipboard shared").on_hover_text(
                        "Ctrl+V in the picture puts your copied text on the end user's clipboard first; what the end user copies lands on yours",
                    );
                }
                ui.menu_button("Keys", |ui| {
                    for (label, keys) in SPECIAL_KEYS {
                        if ui.button(*label).clicked() {
                            self.send_keys(keys);
                            ui.close();
                        }
                    }
                });
                if ui.button("Release control").clicked() {
                    self.send_release_all();
                    self.send(ViewerCommand::ReleaseControl);
                }
                if let Some(note) = &self.clipboard_note {
                    ui.separator();
                    ui.label(note);
                }
            } else {
                match self.controller {
                    Some(other) => ui.label(format!("Technician {other} controls")),
                    None => ui.label("View only"),
                };
                let take = ui
                    .add_enabled(self.allowed.control(), egui::Button::new("Take control"))
                    .on_disabled_hover_text("The end user allowed you to view only");
                if take.clicked() {
                    self.send(ViewerCommand::TakeControl);
                }
            }
        });
    }

    fn chat_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Chat");
        let me = self.me;
        let empty = "Nothing yet. The end user sees your lines in the support app, with your name.";
        self.chat.show_lines(ui, ui.available_height() - 40.0, empty, |line| match &line.from {
            ChatFrom::EndUser => "End user".to_owned(),
            ChatFrom::Technician { id, .. } if *id == me => "You".to_owned(),
            ChatFrom::Technician { name, .. } => name.clone(),
        });
        ui.separator();
        if let Some(text) = self.chat.show_field(ui, chat_field_id()) {
            self.send(ViewerCommand::Chat(text));
        }
    }

    /// Sends modifier releases so nothing stays held when control ends.
    fn send_release_all(&mut self) {
        for (code, _) in modifier_keys(self.sent_modifiers).into_iter().filter(|(_, held)| *held) {
            self.send(ViewerCommand::Input(InputEvent::Key { code, press: Press::Up, text: None }));
        }
        self.sent_modifiers = egui::Modifiers::NONE;
    }

    fn screen(&mut self, ui: &mut egui::Ui) {
        let Some(texture) = &self.texture else {
            ui.centered_and_justified(|ui| ui.label("Waiting for the end user's screen…"));
            return;
        };
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        let texture = texture.id();
        let image_rect = if self.actual_size {
            // One remote pixel per physical pixel, scrolled.
            let pixels = egui::vec2(self.frame_size[0] as f32, self.frame_size[1] as f32) / ui.ctx().pixels_per_point();
            egui::ScrollArea::both()
                .show(ui, |ui| {
                    let (rect, _response) = ui.allocate_exact_size(pixels, egui::Sense::click_and_drag());
                    ui.painter().image(texture, rect, uv, egui::Color32::WHITE);
                    rect
                })
                .inner
        } else {
            let available = ui.available_size();
            let (rect, _response) = ui.allocate_exact_size(available, egui::Sense::click_and_drag());
            let image_rect = egui::Rect::from_center_size(rect.center(), fit(self.frame_size, available));
            ui.painter().image(texture, image_rect, uv, egui::Color32::WHITE);
            image_rect
        };
        // Keys typed into the chat or the file field stay here.
        let chatting = ui.ctx().memory(|m| m.has_focus(chat_field_id()) || m.has_focus(files_field_id()));
        if self.in_control() && !chatting {
            let events = ui.input(|i| i.events.clone());
            for event in events {
                for input in self.translate(&event, image_rect) {
                    self.send(ViewerCommand::Input(input));
                }
            }
        }
    }

    /// What one egui event means on the remote machine.
    fn translate(&mut self, event: &egui::Event, image: egui::Rect) -> Vec<InputEvent> {
        let mut out = Vec::new();
        match event {
            egui::Event::PointerMoved(pos) => {
                if let Some(p) = to_frame(*pos, image, self.frame_size)
                    && self.last_pointer != Some(p)
                {
                    self.last_pointer = Some(p);
                    out.push(InputEvent::PointerMove { x: p.0, y: p.1 });
                }
            }
            egui::Event::PointerButton { pos, button, pressed, .. } => {
                if let (Some(p), Some(button)) = (to_frame(*pos, image, self.frame_size), map_button(*button)) {
                    out.push(InputEvent::PointerMove { x: p.0, y: p.1 });
                    out.push(InputEvent::Button { button, press: if *pressed { Press::Down } else { Press::Up } });
                }
            }
            egui::Event::MouseWheel { unit, delta, .. } => {
                let per_notch = match unit {
                    egui::MouseWheelUnit::Point => POINTS_PER_NOTCH,
                    egui::MouseWheelUnit::Line | egui::MouseWheelUnit::Page => 1.0,
                };
                // egui's delta moves the content; the wheel turns the other way.
                let (dx, dy) = ((-delta.x / per_notch).round() as i32, (-delta.y / per_notch).round() as i32);
                if dx != 0 || dy != 0 {
                    out.push(InputEvent::Wheel { dx, dy });
                }
            }
            egui::Event::Key { key, physical_key, pressed, modifiers, .. } => {
                out.extend(self.modifier_changes(*modifiers));
                if let Some(code) = physical_key.and_then(map_key).or_else(|| map_key(*key)) {
                    out.push(InputEvent::Key { code, press: if *pressed { Press::Down } else { Press::Up }, text: None });
                }
            }
            egui::Event::ModifiersChanged(modifiers) => out.extend(self.modifier_changes(*modifiers)),
            // The system turns these shortcuts into clipboard events and swallows their key
            // press (the release still comes as a key): the press goes to the remote machine.
            egui::Event::Copy => out.push(InputEvent::Key { code: KeyCode::KeyC, press: Press::Down, text: None }),
            egui::Event::Cut => out.push(InputEvent::Key { code: KeyCode::KeyX, press: Press::Down, text: None }),
            egui::Event::Paste(text) => {
                // The text first (same stream, so it is on the clipboard before the key).
                if self.allowed.clipboard() {
                    self.clipboard_note = Some(if text.len() > MAX_CLIPBOARD_TEXT_BYTES {
                        format!("Your copied text is too long to paste across (at most {} KiB): send it as a file", MAX_CLIPBOARD_TEXT_BYTES / 1024)
                    } else {
                        self.send(ViewerCommand::Clipboard(text.clone()));
                        format!("Pasted {} characters to the end user's clipboard", text.chars().count())
                    });
                }
                out.push(InputEvent::Key { code: KeyCode::KeyV, press: Press::Down, text: None });
            }
            egui::Event::Text(text) => {
                // ASCII arrives through its physical key; only what no key names goes as text.
                let special: String = text.chars().filter(|c| !c.is_ascii()).collect();
                if !special.is_empty() {
                    out.push(InputEvent::Text { text: special });
                }
            }
            _ => {}
        }
        out
    }

    fn modifier_changes(&mut self, now: egui::Modifiers) -> Vec<InputEvent> {
        let before = self.sent_modifiers;
        self.sent_modifiers = now;
        modifier_keys(before)
            .into_iter()
            .zip(modifier_keys(now))
            .filter(|((_, was), (_, is))| was != is)
            .map(|((code, _), (_, is))| InputEvent::Key { code, press: if is { Press::Down } else { Press::Up }, text: None })
            .collect()
    }
}

impl eframe::App for ViewerWindow {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.files.chooser.parent = deskline_widgets::Parent::of(frame);
        self.drain_updates(&ctx);
        // The file chosen in the system's dialog goes at once, if the end user still allows
        // files (never later: a choice made while they were taken back is dropped).
        if let Some(path) = self.files.chooser.chosen() {
            self.files.path = None;
            if self.allowed.files() {
                self.send(ViewerCommand::SendFile(path));
            } else {
                self.files.note = Some("Not sent: the end user no longer allows files.".into());
            }
        }
        egui::Panel::top("status").show(ui, |ui| self.top_bar(ui));
        let files_shown = self.allowed.files() || !self.files.offers.is_empty() || !self.files.moving.is_empty() || self.files.note.is_some();
        if files_shown {
            egui::Panel::top("files").show(ui, |ui| self.files_bar(ui));
        }
        if self.chat.open {
            egui::Panel::right("chat").default_size(320.0).resizable(true).show(ui, |ui| self.chat_panel(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| self.screen(ui));
        ctx.request_repaint_after(Duration::from_millis(10));
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.send_release_all();
        self.send(ViewerCommand::Leave);
    }
}

/// Labels for the display menu: id and "name (width×height)".
#[must_use]
pub fn display_labels(displays: &[DisplayInfo]) -> Vec<(u32, String)> {
    displays.iter().map(|d| (d.id, format!("{} ({}×{})", d.name, d.width, d.height))).collect()
}

/// The largest size with the frame's aspect ratio that fits in `available`.
#[must_use]
pub fn fit(frame: [usize; 2], available: egui::Vec2) -> egui::Vec2 {
    if frame[0] == 0 || frame[1] == 0 {
        return egui::Vec2::ZERO;
    }
    let (w, h) = (frame[0] as f32, frame[1] as f32);
    let scale = (available.x / w).min(available.y / h);
    egui::vec2(w * scale, h * scale)
}

/// A window position in the remote display's pixels, if it is over the image.
#[must_use]
pub fn to_frame(pos: egui::Pos2, image: egui::Rect, frame: [usize; 2]) -> Option<(u32, u32)> {
    if !image.contains(pos) || image.width() <= 0.0 || image.height() <= 0.0 {
        return None;
    }
    let x = ((pos.x - image.min.x) / image.width() * frame[0] as f32).floor();
    let y = ((pos.y - image.min.y) / image.height() * frame[1] as f32).floor();
    let clamp = |v: f32, max: usize| v.clamp(0.0, max.saturating_sub(1) as f32) as u32;
    Some((clamp(x, frame[0]), clamp(y, frame[1])))
}

fn map_button(button: egui::PointerButton) -> Option<MouseButton> {
    Some(match button {
        egui::PointerButton::Primary => MouseButton::Left,
        egui::PointerButton::Secondary => MouseButton::Right,
        egui::PointerButton::Middle => MouseButton::Middle,
        egui::PointerButton::Extra1 => MouseButton::Back,
        egui::PointerButton::Extra2 => MouseButton::Forward,
    })
}

/// The left-hand modifier keys and whether each is held.
fn modifier_keys(m: egui::Modifiers) -> [(KeyCode, bool); 4] {
    [
        (KeyCode::ShiftLeft, m.shift),
        (KeyCode::ControlLeft, m.ctrl),
        (KeyCode::AltLeft, m.alt),
        (KeyCode::MetaLeft, m.mac_cmd),
    ]
}

/// The physical key an egui key names (egui names US-layout positions for physical keys).
#[must_use]
pub fn map_key(key: egui::Key) -> Option<KeyCode> {
    use egui::Key as K;
    const LETTERS: [KeyCode; 26] = [
        KeyCode::KeyA, KeyCode::KeyB, KeyCode::KeyC, KeyCode::KeyD, KeyCode::KeyE, KeyCode::KeyF, KeyCode::KeyG,
        KeyCode::KeyH, KeyCode::KeyI, KeyCode::KeyJ, KeyCode::KeyK, KeyCode::KeyL, KeyCode::KeyM, KeyCode::KeyN,
        KeyCode::KeyO, KeyCode::KeyP, KeyCode::KeyQ, KeyCode::KeyR, KeyCode::KeyS, KeyCode::KeyT, KeyCode::KeyU,
        KeyCode::KeyV, KeyCode::KeyW, KeyCode::KeyX, KeyCode::KeyY, KeyCode::KeyZ,
    ];
    const DIGITS: [KeyCode; 10] = [
        KeyCode::Digit0, KeyCode::Digit1, KeyCode::Digit2, KeyCode::Digit3, KeyCode::Digit4, KeyCode::Digit5,
        KeyCode::Digit6, KeyCode::Digit7, KeyCode::Digit8, KeyCode::Digit9,
    ];
    const FUNCTION: [KeyCode; 12] = [
        KeyCode::F1, KeyCode::F2, KeyCode::F3, KeyCode::F4, KeyCode::F5, KeyCode::F6, KeyCode::F7, KeyCode::F8,
        KeyCode::F9, KeyCode::F10, KeyCode::F11, KeyCode::F12,
    ];
    let letters = [
        K::A, K::B, K::C, K::D, K::E, K::F, K::G, K::H, K::I, K::J, K::K, K::L, K::M, K::N, K::O, K::P, K::Q, K::R,
        K::S, K::T, K::U, K::V, K::W, K::X, K::Y, K::Z,
    ];
    let digits = [K::Num0, K::Num1, K::Num2, K::Num3, K::Num4, K::Num5, K::Num6, K::Num7, K::Num8, K::Num9];
    let function = [K::F1, K::F2, K::F3, K::F4, K::F5, K::F6, K::F7, K::F8, K::F9, K::F10, K::F11, K::F12];
    if let Some(i) = letters.iter().position(|k| *k == key) {
        return Some(LETTERS[i]);
    }
    if let Some(i) = digits.iter().position(|k| *k == key) {
        return Some(DIGITS[i]);
    }
    if let Some(i) = function.iter().position(|k| *k == key) {
        return Some(FUNCTION[i]);
    }
    Some(match key {
        K::ArrowDown => KeyCode::ArrowDown,
        K::ArrowLeft => KeyCode::ArrowLeft,
        K::ArrowRight => KeyCode::ArrowRight,
        K::ArrowUp => KeyCode::ArrowUp,
        K::Escape => KeyCode::Escape,
        K::Tab => KeyCode::Tab,
        K::Backspace => KeyCode::Backspace,
        K::Enter => KeyCode::Enter,
        K::Space => KeyCode::Space,
        K::Insert => KeyCode::Insert,
        K::Delete => KeyCode::Delete,
        K::Home => KeyCode::Home,
        K::End => KeyCode::End,
        K::PageUp => KeyCode::PageUp,
        K::PageDown => KeyCode::PageDown,
        K::Comma => KeyCode::Comma,
        K::Backslash => KeyCode::Backslash,
        K::Slash => KeyCode::Slash,
        K::OpenBracket => KeyCode::BracketLeft,
        K::CloseBracket => KeyCode::BracketRight,
        K::Backtick => KeyCode::Backquote,
        K::Minus => KeyCode::Minus,
        K::Period => KeyCode::Period,
        K::Equals => KeyCode::Equal,
        K::Semicolon => KeyCode::Semicolon,
        K::Quote => KeyCode::Quote,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_positions_map_to_remote_pixels() {
        let image = egui::Rect::from_min_size(egui::pos2(100.0, 50.0), egui::vec2(960.0, 540.0));
        let frame = [1920, 1080];
        assert_eq!(to_frame(egui::pos2(100.0, 50.0), image, frame), Some((0, 0)));
        assert_eq!(to_frame(egui::pos2(580.0, 320.0), image, frame), Some((960, 540)));
        assert_eq!(to_frame(egui::pos2(1059.9, 589.9), image, frame), Some((1919, 1079)));
        assert_eq!(to_frame(egui::pos2(99.0, 60.0), image, frame), None, "outside the image");
    }

    #[test]
    fn the_image_keeps_its_aspect_ratio() {
        let size = fit([1920, 1080], egui::vec2(1000.0, 1000.0));
        assert!((size.x - 1000.0).abs() < 0.01 && (size.y - 562.5).abs() < 0.01);
        let size = fit([1080, 1920], egui::vec2(1000.0, 1000.0));
        assert!((size.y - 1000.0).abs() < 0.01 && (size.x - 562.5).abs() < 0.01);
        assert_eq!(fit([0, 0], egui::vec2(10.0, 10.0)), egui::Vec2::ZERO);
    }

    #[test]
    fn keys_map_to_physical_codes() {
        assert_eq!(map_key(egui::Key::A), Some(KeyCode::KeyA));
        assert_eq!(map_key(egui::Key::Num7), Some(KeyCode::Digit7));
        assert_eq!(map_key(egui::Key::F12), Some(KeyCode::F12));
        assert_eq!(map_key(egui::Key::Equals), Some(KeyCode::Equal));
        assert_eq!(map_key(egui::Key::Copy), None, "logical actions are not physical keys");
    }

    #[test]
    fn key_combinations_press_in_order_and_release_in_reverse_only_with_control() {
        let ctrl_alt_del = SPECIAL_KEYS.iter().find(|(label, _)| *label == "Ctrl+Alt+Del").unwrap().1;
        let press = |code, press| InputEvent::Key { code, press, text: None };
        assert_eq!(
            combination(ctrl_alt_del),
            vec![
                press(KeyCode::ControlLeft, Press::Down),
                press(KeyCode::AltLeft, Press::Down),
                press(KeyCode::Delete, Press::Down),
                press(KeyCode::Delete, Press::Up),
                press(KeyCode::AltLeft, Press::Up),
                press(KeyCode::ControlLeft, Press::Up),
            ]
        );
        let (commands, mut sent) = mpsc::unbounded_channel();
        let (_updates_tx, updates) = mpsc::channel(1);
        let mut window = ViewerWindow::new(commands, updates, TechnicianId(1), "test".into());
        window.send_keys(ctrl_alt_del);
        assert!(sent.try_recv().is_err(), "nothing is sent without control");
        window.controller = Some(TechnicianId(1));
        window.send_keys(ctrl_alt_del);
        assert_eq!(sent.try_recv().unwrap(), ViewerCommand::Input(press(KeyCode::ControlLeft, Press::Down)));
    }

    #[test]
    fn only_the_controller_window_sends_input_and_modifiers_are_released() {
        let (commands, mut sent) = mpsc::unbounded_channel();
        let (_updates_tx, updates) = mpsc::channel(1);
        let mut window = ViewerWindow::new(commands, updates, TechnicianId(1), "test".into());
        window.frame_size = [100, 100];
        let image = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(100.0, 100.0));
        let ctrl = egui::Modifiers { ctrl: true, command: true, ..Default::default() };
        let press_c = egui::Event::Key { key: egui::Key::C, physical_key: Some(egui::Key::C), pressed: true, repeat: false, modifiers: ctrl };
        let out = window.translate(&press_c, image);
        assert_eq!(
            out,
            vec![
                InputEvent::Key { code: KeyCode::ControlLeft, press: Press::Down, text: None },
                InputEvent::Key { code: KeyCode::KeyC, press: Press::Down, text: None },
            ]
        );
        window.send_release_all();
        assert_eq!(sent.try_recv().unwrap(), ViewerCommand::Input(InputEvent::Key { code: KeyCode::ControlLeft, press: Press::Up, text: None }));
        assert!(sent.try_recv().is_err(), "only held modifiers are released");
        assert!(!window.in_control(), "nobody granted control yet");
        window.controller = Some(TechnicianId(1));
        assert!(window.in_control());
        let text = window.translate(&egui::Event::Text("aé".into()), image);
        assert_eq!(text, vec![InputEvent::Text { text: "é".into() }]);
    }

    /// egui turns Ctrl+C/X/V into clipboard events and swallows their key press: the press
    /// still reaches the remote machine, and a paste with the clipboard granted sends the text
    /// first (never without the grant, never more than the protocol's limit).
    #[test]
    fn clipboard_shortcuts_reach_the_remote_machine_and_a_paste_sends_the_text_first() {
        let (commands, mut sent) = mpsc::unbounded_channel();
        let (_updates_tx, updates) = mpsc::channel(1);
        let mut window = ViewerWindow::new(commands, updates, TechnicianId(1), "test".into());
        let image = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(100.0, 100.0));
        let down = |code| vec![InputEvent::Key { code, press: Press::Down, text: None }];
        assert_eq!(window.translate(&egui::Event::Copy, image), down(KeyCode::KeyC));
        assert_eq!(window.translate(&egui::Event::Cut, image), down(KeyCode::KeyX));
        window.allowed = Capabilities::VIEW_AND_CONTROL;
        assert_eq!(window.translate(&egui::Event::Paste("secret".into()), image), down(KeyCode::KeyV));
        assert!(sent.try_recv().is_err(), "no clipboard grant: the text stays here");
        window.allowed = Capabilities::VIEW_AND_CONTROL.with_clipboard(true);
        assert_eq!(window.translate(&egui::Event::Paste("dir C:\\".into()), image), down(KeyCode::KeyV));
        assert_eq!(sent.try_recv().unwrap(), ViewerCommand::Clipboard("dir C:\\".into()));
        let too_long = "x".repeat(MAX_CLIPBOARD_TEXT_BYTES + 1);
        assert_eq!(window.translate(&egui::Event::Paste(too_long), image), down(KeyCode::KeyV));
        assert!(sent.try_recv().is_err(), "too long: not sent");
        assert!(window.clipboard_note.as_deref().is_some_and(|n| n.contains("too long")));
    }
}
