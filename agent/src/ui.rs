//! The support app's windows (egui): PIN entry, connection status, the consent popup, and the
//! session bar while sharing.
//!
//! The UI never talks to the network itself: it sends [`UiAction`]s and receives
//! [`NetUpdate`]s, so it is tested with `egui_kittest` without a relay, and the same code runs
//! in the real window.
//!
//! The consent popup is built so that nothing is shared by accident: **Deny** has the keyboard
//! focus, an unanswered prompt denies itself when its countdown ends, and every button has an
//! access key (Alt+A allow, Alt+V view only, Alt+D deny; on the session bar Alt+T takes back
//! control and Alt+S stops sharing; Alt+C closes the app once the session ended) for people who
//! cannot use a mouse.
//!
//! The chat panel (Alt+H opens and closes it) is there from the moment the app is connected,
//! before any consent: the technician can say who they are. A technician's new line opens it
//! and asks the system for the user's attention (without stealing the keyboard). Lines are
//! shown as plain text, with their sender and local time, as the relay recorded them.

use crate::grants::Grants;
use crate::session::{AgentCommand, AgentEvent, ClipboardNote};
use deskline_protocol::limits::MAX_CLIPBOARD_TEXT_BYTES;
use deskline_protocol::{Capabilities, ChatFrom, ConsentOutcome, ConsentRequest, FileOffer, Pin, TechnicianId};
use deskline_widgets::{Chat, FileChooser, Parent};
use eframe::egui;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What the UI asks of the connection.
#[derive(Debug)]
pub enum UiAction {
    /// Connect with this PIN.
    Connect(Pin),
    /// Try the same code again (after the relay was unreachable).
    Retry,
    /// A command for a running session.
    Command(AgentCommand),
}

/// What the connection tells the UI.
#[derive(Debug)]
pub enum NetUpdate {
    /// Connecting to the relay.
    Connecting,
    /// Registered; waiting for a technician.
    Connected {
        /// Who runs the relay (as the relay says).
        organisation: String,
        /// The relay's host name (as the link or the command line named it): what the end user
        /// can check, whatever organisation a relay claims to be.
        relay: String,
    },
    /// The connection dropped; trying to get back in (nothing is shared meanwhile).
    Reconnecting,
    /// Registration failed.
    Failed {
        /// What to tell the end user.
        message: String,
        /// Whether trying again can help (the relay was unreachable).
        retry: bool,
        /// Whether a new PIN is needed.
        new_code: bool,
    },
    /// A technician asks for consent; answer on the channel.
    ConsentAsked(ConsentRequest, oneshot::Sender<ConsentOutcome>),
    /// The request's time ran out before an answer (it counts as a denial): the popup closes
    /// and says so, whether or not the window was repainted meanwhile.
    ConsentExpired(u64),
    /// Something changed in the session.
    Event(AgentEvent),
    /// The session is over.
    Ended(String),
}

/// Which window is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// Type the PIN the technician gave.
    EnterPin {
        /// What was typed.
        input: String,
        /// Why the last attempt failed.
        error: Option<String>,
    },
    /// Connecting.
    Connecting,
    /// The connection dropped; getting back in.
    Reconnecting,
    /// Connected, waiting for a technician (or between requests).
    Connected,
    /// Could not connect.
    Failed {
        /// Why.
        message: String,
        /// Offer "Try again".
        retry: bool,
    },
    /// The session is over.
    Ended(String),
}

struct PendingConsent {
    request: ConsentRequest,
    shown_at: Instant,
    answer: Option<oneshot::Sender<ConsentOutcome>>,
    focused: bool,
    /// What Allow grants beyond view and control, each ticked if asked (the end user may untick).
    files: bool,
    clipboard: bool,
}

/// A file a technician offers, with the folder the end user will save it in.
struct FileAsk {
    offer: FileOffer,
    folder: String,
}

/// A file on its way.
struct Moving {
    transfer: u64,
    name: String,
    size: u64,
    bytes: u64,
    incoming: bool,
}

#[derive(Default)]
struct FilesShown {
    asks: std::collections::VecDeque<FileAsk>,
    moving: Vec<Moving>,
    note: Option<String>,
    /// The path typed into "Send a file", while that field is open.
    send_path: Option<String>,
    /// The system's file dialog "Send a file" opens (beside the field).
    chooser: FileChooser,
}

/// Where files are saved unless the end user says otherwise.
fn default_folder() -> String {
    use crate::platform::System as _;
    crate::platform::native::Facts::downloads().map(|d| d.display().to_string()).unwrap_or_default()
}

/// A size for people: "512 bytes", "2.3 MB".
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// "This session is recorded", in bold: said before the end user chooses and while sharing.
fn recorded_notice(organisation: &str) -> egui::RichText {
    egui::RichText::new(format!("This session is recorded: {organisation} keeps a video of your screen while it is shared.")).strong()
}

/// The support app's UI state.
pub struct AgentUi {
    /// The current window.
    pub screen: Screen,
    organisation: String,
    relay: String,
    /// The relay said the session is recorded (in its last consent request).
    recorded: bool,
    grants: Grants,
    granted: Capabilities,
    /// Something to tell the end user on the status window (a late answer).
    notice: Option<String>,
    streaming: bool,
    controller: Option<TechnicianId>,
    consent: Option<PendingConsent>,
    /// The end user closed the window after the session ended.
    closing: bool,
    chat: Chat,
    /// The last thing that happened on the clipboard, shown in the session bar.
    clipboard_note: Option<String>,
    /// Files: offered and waiting for the end user's answer (the first is asked), on their
    /// way, and what last happened; the "send a file" field while it is open.
    files: FilesShown,
    /// Ask the system for the user's attention at the next frame (a technician wrote).
    attention: bool,
    actions: mpsc::UnboundedSender<UiAction>,
    updates: mpsc::UnboundedReceiver<NetUpdate>,
}

impl AgentUi {
    /// A UI that starts with PIN entry (`None`) or already connecting with a code.
    #[must_use]
    pub fn new(
        actions: mpsc::UnboundedSender<UiAction>,
        updates: mpsc::UnboundedReceiver<NetUpdate>,
        connecting: bool,
    ) -> AgentUi {
        AgentUi {
            screen: if connecting { Screen::Connecting } else { Screen::EnterPin { input: String::new(), error: None } },
            organisation: String::new(),
            relay: String::new(),
            recorded: false,
            grants: Grants::default(),
            granted: Capabilities::NONE,
            notice: None,
            streaming: false,
            controller: None,
            consent: None,
            closing: false,
            chat: Chat::default(),
            clipboard_note: None,
            files: FilesShown::default(),
            attention: false,
            actions,
            updates,
        }
    }

    /// Shows "Send a file"'s dialogs with `chooser` instead of the system's (tests).
    #[must_use]
    pub fn with_file_chooser(mut self, chooser: FileChooser) -> AgentUi {
        self.files.chooser = chooser;
        self
    }

    /// The window the system's dialogs belong to (kept above it); call each frame.
    pub fn set_dialog_parent(&mut self, parent: Option<Parent>) {
        self.files.chooser.parent = parent;
    }

    /// Is a consent prompt showing?
    #[must_use]
    pub fn asking(&self) -> bool {
        self.consent.is_some()
    }

    /// Is the screen shared right now (the session bar shows)?
    #[must_use]
    pub fn sharing(&self) -> bool {
        self.granted.view() && self.consent.is_none()
    }

    /// Did the end user close the app (after the session ended)?
    #[must_use]
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Is the chat panel open?
    #[must_use]
    pub fn chat_open(&self) -> bool {
        self.chat.open
    }

    /// What the end user currently allows.
    #[must_use]
    pub fn granted(&self) -> Capabilities {
        self.granted
    }

    fn apply_updates(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            match update {
                NetUpdate::Connecting => self.screen = Screen::Connecting,
                NetUpdate::Connected { organisation, relay } => {
                    self.organisation = organisation;
                    self.relay = relay;
                    self.screen = Screen::Connected;
                }
                NetUpdate::Reconnecting => {
                    self.consent = None;
                    self.set_grants(Grants::default());
                    self.screen = Screen::Reconnecting;
                }
                NetUpdate::Failed { message, retry, new_code } => {
                    self.screen = if new_code {
                        Screen::EnterPin { input: String::new(), error: Some(message) }
                    } else {
                        Screen::Failed { message, retry }
                    };
                }
                NetUpdate::ConsentAsked(request, answer) => {
                    self.notice = None;
                    self.organisation = request.organisation.clone();
                    self.recorded = request.recorded;
                    let (files, clipboard) = (request.capabilities.files(), request.capabilities.clipboard());
                    self.consent = Some(PendingConsent { request, shown_at: Instant::now(), answer: Some(answer), focused: false, files, clipboard });
                }
                NetUpdate::ConsentExpired(request_id) => {
                    if self.consent.as_ref().is_some_and(|p| p.request.request_id == request_id) {
                        let technician = self.consent.take().map(|p| p.request.technician).unwrap_or_default();
                        self.notice = Some(format!("{technician}'s request was not answered in time, so nothing is shared. They can ask again."));
                    }
                }
                NetUpdate::Event(AgentEvent::Access(grants)) => self.set_grants(grants),
                NetUpdate::Event(AgentEvent::AnswerTooLate) => {
                    self.notice = Some("Your answer came too late: nothing is shared. The technician can ask again.".into());
                }
                NetUpdate::Event(AgentEvent::Streaming(on)) => self.streaming = on,
                NetUpdate::Event(AgentEvent::Controller(holder)) => self.controller = holder,
                NetUpdate::Event(AgentEvent::Chat(line)) => {
                    if matches!(line.from, ChatFrom::Technician { .. }) {
                        // A technician's new line raises the panel.
                        self.chat.open = true;
                        self.attention = true;
                    }
                    self.chat.push(line);
                }
                NetUpdate::Event(AgentEvent::FileOffered(offer)) => {
                    self.attention = true;
                    self.files.asks.push_back(FileAsk { offer, folder: default_folder() });
                }
                NetUpdate::Event(AgentEvent::FileProgress { transfer, bytes }) => {
                    if let Some(moving) = self.files.moving.iter_mut().find(|m| m.transfer == transfer) {
                        moving.bytes = bytes;
                    }
                }
                NetUpdate::Event(AgentEvent::FileDone { transfer, incoming, name, saved, message }) => {
                    self.files.moving.retain(|m| m.transfer != transfer);
                    self.files.note = Some(match (incoming, saved) {
                        (true, true) => format!("Saved {message}."),
                        (true, false) => format!("{name} was not saved: {message}."),
                        (false, true) => format!("{name} reached the technician."),
                        (false, false) => format!("{name} was not sent: {message}."),
                    });
                }
                NetUpdate::Event(AgentEvent::Clipboard(note)) => {
                    self.clipboard_note = Some(match note {
                        ClipboardNote::Received { from, chars } => format!("{from} put text on your clipboard ({chars} characters)."),
                        ClipboardNote::Sent { chars } => format!("The text you copied went to the technician ({chars} characters)."),
                        ClipboardNote::TooLong { bytes } => format!(
                            "The text you copied is too long to share ({} KiB, at most {} KiB): send it as a file.",
                            bytes.div_ceil(1024),
                            MAX_CLIPBOARD_TEXT_BYTES / 1024
                        ),
                    });
                }
                NetUpdate::Event(_) => {}
                NetUpdate::Ended(message) => {
                    self.consent = None;
                    self.set_grants(Grants::default());
                    self.screen = Screen::Ended(message);
                }
            }
        }
    }

    fn set_grants(&mut self, grants: Grants) {
        self.granted = grants.any();
        self.grants = grants;
    }

    /// Who may see the screen now, as the session bar lists them.
    #[must_use]
    pub fn viewers(&self) -> Vec<String> {
        self.grants.list().iter().filter(|g| g.capabilities.view()).map(|g| g.name.clone()).collect()
    }

    /// "Example IT (desk.example.org)": the organisation as the relay names itself, and the
    /// relay's host name, which the end user can check.
    fn who_runs_it(&self) -> String {
        if self.relay.is_empty() { self.organisation.clone() } else { format!("{} ({})", self.organisation, self.relay) }
    }

    fn answer(&mut self, outcome: ConsentOutcome) {
        if let Some(mut pending) = self.consent.take()
            && let Some(answer) = pending.answer.take()
        {
            let _ = answer.send(outcome);
        }
    }

    fn command(&mut self, command: AgentCommand) {
        // Enforce on screen at once; the connection enforces and tells the relay.
        let mut grants = self.grants.clone();
        grants.restrict(match command {
            AgentCommand::TakeBackControl => Capabilities::ALL.without_control(),
            AgentCommand::StopSharing | AgentCommand::Disconnect => Capabilities::NONE,
            // Shares nothing: restricts nothing.
            AgentCommand::Chat(_) | AgentCommand::AnswerFile { .. } | AgentCommand::SendFile { .. } => Capabilities::ALL,
        });
        self.set_grants(grants);
        let _ = self.actions.send(UiAction::Command(command));
    }

    /// Draws the current window and handles its input. Call once per frame.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.apply_updates();
        self.take_chosen_file();
        if self.consent.is_some() {
            // The question alone: nothing may distract from it.
            self.consent_popup(ui);
            return;
        }
        if self.sharing() {
            self.session_bar(ui);
        } else {
            self.status(ui);
        }
        if matches!(self.screen, Screen::Connected) {
            self.chat_panel(ui);
        }
    }

    /// The chat: a button that opens and closes it, the lines, and a field to write in.
    fn chat_panel(&mut self, ui: &mut egui::Ui) {
        if std::mem::take(&mut self.attention) {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(egui::UserAttentionType::Informational));
        }
        ui.add_space(8.0);
        let alt_h = ui.input(|i| i.modifiers.alt && i.key_pressed(egui::Key::H));
        let label = if self.chat.open { "Hide chat (Alt+H)" } else { "Chat with the technician (Alt+H)" };
        if ui.button(label).clicked() || alt_h {
            self.chat.open = !self.chat.open;
            self.chat.focus = self.chat.open;
        }
        if !self.chat.open {
            return;
        }
        ui.separator();
        self.chat.show_lines(ui, 180.0, "No messages yet.", |line| match &line.from {
            ChatFrom::EndUser => "You".to_owned(),
            ChatFrom::Technician { name, .. } => name.clone(),
        });
        if let Some(text) = self.chat.show_field(ui, egui::Id::unique("chat-field")) {
            let _ = self.actions.send(UiAction::Command(AgentCommand::Chat(text)));
        }
    }

    fn consent_popup(&mut self, ui: &mut egui::Ui) {
        let Some(pending) = &mut self.consent else { return };
        let timeout = Duration::from_millis(u64::from(pending.request.timeout_ms));
        let left = timeout.saturating_sub(pending.shown_at.elapsed());
        if left.is_zero() {
            let technician = pending.request.technician.clone();
            self.answer(ConsentOutcome::TimedOut);
            self.notice = Some(format!("{technician}'s request was not answered in time, so nothing is shared. They can ask again."));
            return;
        }
        let asked = pending.request.capabilities;
        let what = if asked.control() { "see your screen and control your mouse and keyboard" } else { "see your screen" };
        ui.heading("Allow remote support?");
        ui.add_space(8.0);
        ui.label(format!("{} from {} asks to {what}.", pending.request.technician, pending.request.organisation));
        if pending.request.recorded {
            ui.add_space(4.0);
            ui.label(recorded_notice(&pending.request.organisation));
        }
        if asked.files() || asked.clipboard() {
            ui.add_space(4.0);
            ui.label("With Allow, also:");
            if asked.files() {
                ui.checkbox(&mut pending.files, "send you files and receive yours (you accept each file)");
            }
            if asked.clipboard() {
                ui.checkbox(&mut pending.clipboard, "share copied text both ways (what you copy goes to them)");
            }
        }
        if !self.relay.is_empty() {
            ui.label(format!("Support server: {}", self.relay));
        }
        ui.label("Only allow this if you are expecting help from them.");
        ui.add_space(8.0);
        ui.label(format!("Denied automatically in {} s.", left.as_secs() + 1));
        ui.add_space(8.0);
        // Allow grants what was asked less what the end user unticked.
        let allowed = asked.with_files(asked.files() && pending.files).with_clipboard(asked.clipboard() && pending.clipboard);
        let mut outcome = None;
        ui.horizontal(|ui| {
            let deny = ui.button("Deny (Alt+D)");
            if !pending.focused {
                deny.request_focus();
                pending.focused = true;
            }
            if deny.clicked() {
                outcome = Some(ConsentOutcome::Denied);
            }
            if asked.control() && ui.button("Allow view only (Alt+V)").clicked() {
                outcome = Some(ConsentOutcome::Granted(Capabilities::VIEW));
            }
            if ui.button("Allow (Alt+A)").clicked() {
                outcome = Some(ConsentOutcome::Granted(allowed));
            }
        });
        let keys = ui.input(|i| (i.modifiers.alt, i.key_pressed(egui::Key::A), i.key_pressed(egui::Key::V), i.key_pressed(egui::Key::D)));
        match keys {
            (true, true, _, _) => outcome = Some(ConsentOutcome::Granted(allowed)),
            (true, _, true, _) if asked.control() => outcome = Some(ConsentOutcome::Granted(Capabilities::VIEW)),
            (true, _, _, true) => outcome = Some(ConsentOutcome::Denied),
            _ => {}
        }
        if let Some(outcome) = outcome {
            self.answer(outcome);
        } else {
            // Keep the countdown moving.
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
    }

    fn session_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            // A red dot (drawn: not every font has a glyph for one).
            let (dot, _) = ui.allocate_exact_size(egui::vec2(16.0, 16.0), egui::Sense::hover());
            ui.painter().circle_filled(dot.center(), 7.0, egui::Color32::from_rgb(220, 50, 50));
            ui.heading("Your screen is shared");
        });
        ui.add_space(4.0);
        // One line for everyone who sees the screen, saying who controls it.
        for grant in self.grants.list().iter().filter(|g| g.capabilities.view()) {
            let c = grant.capabilities;
            let mut doing = vec![if c.control() && self.controller == Some(grant.technician) {
                "sees your screen and controls your mouse and keyboard"
            } else {
                "sees your screen"
            }];
            if c.files() {
                doing.push("may pass files");
            }
            if c.clipboard() {
                doing.push("shares copied text");
            }
            ui.label(format!("{} {}", grant.name, doing.join(", ")));
        }
        if let Some(note) = &self.clipboard_note {
            ui.label(note.as_str());
        }
        ui.label(format!("from {}", self.who_runs_it()));
        if self.recorded {
            ui.label(recorded_notice(&self.organisation));
        }
        ui.add_space(6.0);
        let (alt_t, alt_s) = ui.input(|i| (i.modifiers.alt && i.key_pressed(egui::Key::T), i.modifiers.alt && i.key_pressed(egui::Key::S)));
        ui.horizontal(|ui| {
            if self.granted.control() && (ui.button("Take back control (Alt+T)").clicked() || alt_t) {
                self.command(AgentCommand::TakeBackControl);
            }
            if ui.button("Stop sharing (Alt+S)").clicked() || alt_s {
                self.command(AgentCommand::StopSharing);
            }
        });
        if self.granted.files() || !self.files.moving.is_empty() || self.files.note.is_some() {
            self.files_panel(ui);
        }
    }

    /// Files: the offer being asked (save where, or decline), files on their way, the last
    /// result, and "Send a file".
    fn files_panel(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        let (alt_y, alt_n, alt_f) = ui.input(|i| {
            (i.modifiers.alt && i.key_pressed(egui::Key::Y), i.modifiers.alt && i.key_pressed(egui::Key::N), i.modifiers.alt && i.key_pressed(egui::Key::F))
        });
        let mut answer = None;
        if let Some(ask) = self.files.asks.front_mut() {
            ui.group(|ui| {
                ui.strong(format!("{} sends you a file: {} ({})", ask.offer.from, ask.offer.name, human_size(ask.offer.size)));
                ui.horizontal(|ui| {
                    ui.label("Save in:");
                    ui.add(egui::TextEdit::singleline(&mut ask.folder).desired_width(320.0));
                });
                ui.label("A file of the same name is kept: this one gets a number.");
                ui.horizontal(|ui| {
                    if ui.button("Save (Alt+Y)").clicked() || alt_y {
                        answer = Some(true);
                    }
                    if ui.button("Decline (Alt+N)").clicked() || alt_n {
                        answer = Some(false);
                    }
                });
            });
        }
        if let Some(accepted) = answer
            && let Some(ask) = self.files.asks.pop_front()
        {
            let save_to = accepted.then(|| std::path::Path::new(ask.folder.trim()).join(&ask.offer.name));
            if accepted {
                self.files.moving.push(Moving { transfer: ask.offer.transfer, name: ask.offer.name.clone(), size: ask.offer.size, bytes: 0, incoming: true });
            }
            let _ = self.actions.send(UiAction::Command(AgentCommand::AnswerFile { transfer: ask.offer.transfer, save_to }));
        }
        for moving in &self.files.moving {
            let what = if moving.incoming { "Receiving" } else { "Sending" };
            let fraction = if moving.size == 0 { 1.0 } else { moving.bytes as f32 / moving.size as f32 };
            ui.add(egui::ProgressBar::new(fraction).text(format!("{what} {} ({})", moving.name, human_size(moving.size))));
        }
        if let Some(note) = &self.files.note {
            ui.label(note.as_str());
        }
        if !self.granted.files() {
            return;
        }
        match &mut self.files.send_path {
            None => {
                // The system's file dialog opens, and a field to type a path in (for a
                // desktop that shows no dialog, or a user who knows the path).
                if ui.button("Send a file to the technician (Alt+F)").clicked() || alt_f {
                    let folder = default_folder();
                    self.files.chooser.open(ui.ctx(), "Send a file to the technician", Some(std::path::Path::new(&folder)));
                    self.files.send_path = Some(if folder.is_empty() { folder } else { format!("{folder}{}", std::path::MAIN_SEPARATOR) });
                }
            }
            Some(path) => {
                if self.files.chooser.is_open() {
                    ui.label("Choose the file in the window that opened, or type its path here.");
                }
                ui.horizontal(|ui| {
                    ui.label("File to send:");
                    ui.add(egui::TextEdit::singleline(path).desired_width(320.0));
                });
                let mut send = None;
                ui.horizontal(|ui| {
                    if ui.add_enabled(!self.files.chooser.is_open(), egui::Button::new("Choose…")).clicked() {
                        self.files.chooser.open(ui.ctx(), "Send a file to the technician", Some(std::path::Path::new(path.trim())));
                    }
                    if ui.button("Send").clicked() {
                        send = Some(true);
                    }
                    if ui.button("Cancel").clicked() {
                        send = Some(false);
                    }
                });
                if let Some(send) = send {
                    let path = std::path::PathBuf::from(path.trim());
                    self.files.send_path = None;
                    if send {
                        self.send_file(path);
                    }
                }
            }
        }
    }

    /// The file chosen in the system's dialog goes at once — if files are still allowed (the
    /// dialog may have stayed open while the end user took them back: then it is not sent, now
    /// or later, and the session bar says so).
    fn take_chosen_file(&mut self) {
        if let Some(path) = self.files.chooser.chosen() {
            self.files.send_path = None;
            if self.granted.files() {
                self.send_file(path);
            } else {
                self.files.note = Some("Not sent: files are no longer allowed.".into());
            }
        }
    }

    /// Sends the file at `path` to the technicians (its progress shows in the session bar).
    fn send_file(&mut self, path: std::path::PathBuf) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let transfer = crate::source::now_us();
        self.files.moving.push(Moving { transfer, name, size, bytes: 0, incoming: false });
        let _ = self.actions.send(UiAction::Command(AgentCommand::SendFile { transfer, path }));
    }

    fn status(&mut self, ui: &mut egui::Ui) {
        match &mut self.screen {
            Screen::EnterPin { input, error } => {
                ui.heading("Remote support");
                ui.label("Enter the 6-digit code your technician gave you.");
                let field = ui.add(egui::TextEdit::singleline(input).hint_text("123 456").desired_width(160.0));
                // Keep only what a PIN can contain (pasted text often carries spaces or dashes).
                input.retain(|c| c.is_ascii_digit() || c == ' ' || c == '-');
                let parsed = input.parse::<Pin>();
                if let Some(error) = error {
                    ui.colored_label(egui::Color32::LIGHT_RED, error.as_str());
                }
                let submit = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                let connect = ui.add_enabled(parsed.is_ok(), egui::Button::new("Connect"));
                if (connect.clicked() || submit)
                    && let Ok(pin) = parsed
                {
                    let _ = self.actions.send(UiAction::Connect(pin));
                    self.screen = Screen::Connecting;
                }
            }
            Screen::Connecting => {
                ui.heading("Remote support");
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Connecting…");
                });
            }
            Screen::Reconnecting => {
                ui.heading("Remote support");
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("Connection lost. Reconnecting to {}…", self.who_runs_it()));
                });
                ui.label("Nothing is shared while the connection is down.");
            }
            Screen::Connected => {
                ui.heading("Remote support");
                ui.label(format!("Connected to {}.", self.who_runs_it()));
                ui.label("Waiting for a technician. Nothing is shared until you allow it.");
                if let Some(notice) = &self.notice {
                    ui.colored_label(egui::Color32::from_rgb(200, 120, 0), notice.as_str());
                }
                if self.granted.is_empty() {
                    ui.add_space(8.0);
                    if ui.button("Leave").clicked() {
                        self.command(AgentCommand::Disconnect);
                        self.screen = Screen::Ended("You left the session.".into());
                    }
                }
            }
            Screen::Failed { message, retry } => {
                ui.heading("Remote support");
                ui.colored_label(egui::Color32::LIGHT_RED, message.as_str());
                ui.add_space(8.0);
                if *retry {
                    if ui.button("Try again").clicked() {
                        let _ = self.actions.send(UiAction::Retry);
                        self.screen = Screen::Connecting;
                    }
                } else {
                    self.close_button(ui);
                }
            }
            Screen::Ended(message) => {
                ui.heading("Remote support");
                ui.label(message.as_str());
                ui.label("Nothing is shared any more.");
                ui.add_space(8.0);
                self.close_button(ui);
            }
        }
    }

    /// Closing the window ends the app.
    fn close_button(&mut self, ui: &mut egui::Ui) {
        let alt_c = ui.input(|i| i.modifiers.alt && i.key_pressed(egui::Key::C));
        if ui.button("Close (Alt+C)").clicked() || alt_c {
            self.closing = true;
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Text sizes for people who may not read screens all day: the consent popup is what the end
/// user trusts, so it must be easy to read at a glance (egui's defaults are 12.5–14 px).
pub fn readable_text(ctx: &egui::Context) {
    use egui::{FontId, TextStyle};
    ctx.all_styles_mut(|style| {
        style.text_styles = [
            (TextStyle::Heading, FontId::proportional(24.0)),
            (TextStyle::Body, FontId::proportional(17.0)),
            (TextStyle::Button, FontId::proportional(17.0)),
            (TextStyle::Small, FontId::proportional(13.0)),
            (TextStyle::Monospace, FontId::monospace(15.0)),
        ]
        .into();
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
    });
}

/// Asks through the UI: the request goes to the window, the answer comes back. A closed window
/// denies.
pub struct UiPrompt {
    updates: mpsc::UnboundedSender<NetUpdate>,
}

impl UiPrompt {
    /// A prompt that asks through this update channel.
    #[must_use]
    pub fn new(updates: mpsc::UnboundedSender<NetUpdate>) -> UiPrompt {
        UiPrompt { updates }
    }
}

impl crate::prompt::ConsentPrompt for UiPrompt {
    async fn ask(&self, request: &ConsentRequest) -> ConsentOutcome {
        /// Tells the window when the question is dropped unanswered (its time ran out).
        struct Unanswered<'a> {
            updates: &'a mpsc::UnboundedSender<NetUpdate>,
            request_id: Option<u64>,
        }
        impl Drop for Unanswered<'_> {
            fn drop(&mut self) {
                if let Some(request_id) = self.request_id {
                    let _ = self.updates.send(NetUpdate::ConsentExpired(request_id));
                }
            }
        }
        let (answer, answered) = oneshot::channel();
        if self.updates.send(NetUpdate::ConsentAsked(request.clone(), answer)).is_err() {
            return ConsentOutcome::Denied;
        }
        let mut unanswered = Unanswered { updates: &self.updates, request_id: Some(request.request_id) };
        let outcome = answered.await.unwrap_or(ConsentOutcome::Denied);
        unanswered.request_id = None;
        outcome
    }
}
