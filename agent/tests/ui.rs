//! The support app's windows, driven like a person would: typing, clicking, access keys.
#![allow(clippy::unwrap_used)]

use deskline_agent::grants::Grants;
use deskline_agent::session::{AgentCommand, AgentEvent};
use deskline_agent::ui::{AgentUi, NetUpdate, Screen, UiAction};
use deskline_protocol::{Capabilities, ChatFrom, ChatLine, ConsentOutcome, ConsentRequest, Pin, TechnicianId, Timestamp};
use eframe::egui;
use deskline_widgets::FileChooser;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use tokio::sync::{mpsc, oneshot};

struct Ui {
    harness: Harness<'static, AgentUi>,
    actions: mpsc::UnboundedReceiver<UiAction>,
    updates: mpsc::UnboundedSender<NetUpdate>,
}

fn ui(connecting: bool) -> Ui {
    // No system dialog in these tests: one that is cancelled.
    ui_choosing(connecting, FileChooser::with(std::sync::Arc::new(|_| None)))
}

fn ui_choosing(connecting: bool, chooser: FileChooser) -> Ui {
    let (actions_tx, actions) = mpsc::unbounded_channel();
    let (updates, updates_rx) = mpsc::unbounded_channel();
    let app = AgentUi::new(actions_tx, updates_rx, connecting).with_file_chooser(chooser);
    let harness = Harness::new_ui_state(|ui, app: &mut AgentUi| app.show(ui), app);
    Ui { harness, actions, updates }
}

fn request(capabilities: Capabilities, timeout_ms: u32) -> ConsentRequest {
    ConsentRequest {
        request_id: 9,
        organisation: "Example IT".into(),
        technician: "Ada".into(),
        technician_id: ADA,
        capabilities,
        timeout_ms,
        recorded: false,
    }
}

const ADA: TechnicianId = TechnicianId(1);
const BOB: TechnicianId = TechnicianId(2);

fn connected() -> NetUpdate {
    NetUpdate::Connected { organisation: "Example IT".into(), relay: "desk.example.org".into() }
}

impl Ui {
    /// Shows a consent request; returns where the answer arrives.
    fn ask(&mut self, capabilities: Capabilities, timeout_ms: u32) -> oneshot::Receiver<ConsentOutcome> {
        self.updates.send(connected()).unwrap();
        let (tx, rx) = oneshot::channel();
        self.updates.send(NetUpdate::ConsentAsked(request(capabilities, timeout_ms), tx)).unwrap();
        self.harness.run_steps(3);
        rx
    }

    fn sharing(&mut self, granted: Capabilities) {
        let mut grants = Grants::default();
        grants.allow(9, ADA, "Ada", granted);
        self.share(grants, Some(ADA));
    }

    fn share(&mut self, grants: Grants, controller: Option<TechnicianId>) {
        self.updates.send(connected()).unwrap();
        self.updates.send(NetUpdate::Event(AgentEvent::Access(grants))).unwrap();
        self.updates.send(NetUpdate::Event(AgentEvent::Controller(controller))).unwrap();
        self.harness.run_steps(2);
    }
}

#[test]
fn a_typed_or_pasted_pin_connects() {
    let mut ui = ui(false);
    ui.harness.run_steps(2);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    ui.harness.run_steps(1);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("12a3 45");
    ui.harness.run_steps(2);
    // Five digits: not yet a PIN, Connect does nothing.
    ui.harness.get_by_label("Connect").click();
    ui.harness.run_steps(2);
    assert!(ui.actions.try_recv().is_err());
    let field = ui.harness.get_by_role(egui::accesskit::Role::TextInput);
    assert_eq!(field.value().as_deref(), Some("123 45"), "the letter was dropped");
    // Back in the field, the pasted remainder with a dash completes it.
    field.focus();
    ui.harness.run_steps(1);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("-6");
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Connect").click();
    ui.harness.run_steps(2);
    match ui.actions.try_recv().unwrap() {
        UiAction::Connect(pin) => assert_eq!(pin, "123456".parse::<Pin>().unwrap()),
        other => panic!("{other:?}"),
    }
    assert_eq!(ui.harness.state().screen, Screen::Connecting);
}

#[test]
fn a_rejected_code_asks_for_a_new_one_with_the_reason() {
    let mut ui = ui(true);
    let message = "This code is not valid. Check the 6 digits with your technician.".to_owned();
    ui.updates.send(NetUpdate::Failed { message: message.clone(), retry: false, new_code: true }).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label(&message);
    assert!(matches!(ui.harness.state().screen, Screen::EnterPin { .. }));
    // Unreachable relay: keep the code, offer to try again.
    ui.updates.send(NetUpdate::Failed { message: "Cannot reach the support server.".into(), retry: true, new_code: false }).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Try again").click();
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv().unwrap(), UiAction::Retry));
}

#[test]
fn deny_is_the_default_answer() {
    let mut ui = ui(true);
    let answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    ui.harness.get_by_label_contains("Ada from Example IT asks to see your screen and control");
    // The relay's host name beside the organisation it claims to be.
    ui.harness.get_by_label("Support server: desk.example.org");
    assert!(ui.harness.get_by_label("Deny (Alt+D)").is_focused(), "Deny has the focus");
    ui.harness.key_press(egui::Key::Enter);
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Denied);
    assert!(!ui.harness.state().asking());
}

#[test]
fn an_unanswered_prompt_denies_itself_when_the_countdown_ends() {
    let mut ui = ui(true);
    let mut answer = ui.ask(Capabilities::VIEW, 300);
    ui.harness.get_by_label_contains("Denied automatically in");
    assert!(answer.try_recv().is_err(), "not before the countdown ends");
    std::thread::sleep(std::time::Duration::from_millis(350));
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::TimedOut);
}

#[test]
fn allow_view_only_and_allow_control_by_mouse_and_by_access_key() {
    let mut ui = ui(true);
    let answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    ui.harness.get_by_label("Allow view only (Alt+V)").click();
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::VIEW));

    let answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::A);
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::VIEW_AND_CONTROL));

    let answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::D);
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Denied);

    // A view-only request has no view-only button: Allow is view.
    let answer = ui.ask(Capabilities::VIEW, 30_000);
    assert!(ui.harness.query_by_label("Allow view only (Alt+V)").is_none());
    ui.harness.get_by_label("Allow (Alt+A)").click();
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::VIEW));
}

#[test]
fn the_session_bar_stops_sharing() {
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW_AND_CONTROL);
    ui.harness.get_by_label_contains("controls your mouse and keyboard");
    ui.harness.get_by_label("Stop sharing (Alt+S)").click();
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv().unwrap(), UiAction::Command(AgentCommand::StopSharing)));
    assert!(!ui.harness.state().sharing(), "the bar reflects it at once");
}

#[test]
fn the_session_bar_takes_back_control() {
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW_AND_CONTROL);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::T);
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv().unwrap(), UiAction::Command(AgentCommand::TakeBackControl)));
    assert_eq!(ui.harness.state().granted(), Capabilities::VIEW);
    assert!(ui.harness.query_by_label("Take back control (Alt+T)").is_none());
    ui.harness.get_by_label_contains("sees your screen");
}

#[test]
fn the_session_bar_lists_everyone_who_sees_and_who_controls() {
    let mut ui = ui(true);
    let mut grants = Grants::default();
    grants.allow(1, ADA, "Ada", Capabilities::VIEW_AND_CONTROL);
    grants.allow(2, BOB, "Bob", Capabilities::VIEW);
    ui.share(grants, Some(ADA));
    ui.harness.get_by_label("Ada sees your screen and controls your mouse and keyboard");
    ui.harness.get_by_label("Bob sees your screen");
    ui.harness.get_by_label("from Example IT (desk.example.org)");
    assert_eq!(ui.harness.state().viewers(), ["Ada", "Bob"]);
}

#[test]
fn a_lost_connection_shows_reconnecting_and_nothing_shared() {
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW);
    assert!(ui.harness.state().sharing());
    ui.updates.send(NetUpdate::Reconnecting).unwrap();
    ui.harness.run_steps(2);
    assert_eq!(ui.harness.state().screen, Screen::Reconnecting);
    assert!(!ui.harness.state().sharing());
    ui.harness.get_by_label_contains("Reconnecting to Example IT (desk.example.org)");
}

/// Found by a new user (issue 13): with the window not repainted, the popup still counted down
/// after the request had timed out, and a late Allow silently did nothing. The connection's
/// own timeout now closes the popup and says why, whatever the window's repaints.
#[test]
fn a_request_whose_time_ran_out_closes_the_popup_and_says_so() {
    use deskline_agent::ConsentPrompt as _;
    let mut ui = ui(true);
    ui.updates.send(connected()).unwrap();
    let prompt = deskline_agent::ui::UiPrompt::new(ui.updates.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let request = request(Capabilities::VIEW_AND_CONTROL, 30_000);
    // The connection gives up on the answer (its timeout), dropping the question.
    let timed_out = runtime.block_on(async { tokio::time::timeout(std::time::Duration::from_millis(20), prompt.ask(&request)).await });
    assert!(timed_out.is_err());
    ui.harness.run_steps(3);
    assert!(!ui.harness.state().asking(), "the popup closed");
    ui.harness.get_by_label_contains("was not answered in time, so nothing is shared");
}

/// Gap of issue 13: once the session ended, the window only said "you can close this window";
/// it now has a Close button (and Alt+C) that ends the app.
#[test]
fn an_ended_session_offers_a_close_button_that_ends_the_app() {
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW);
    ui.updates.send(NetUpdate::Ended("The session ended: the technician closed the session.".into())).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("The session ended: the technician closed the session.");
    ui.harness.get_by_label("Nothing is shared any more.");
    assert!(!ui.harness.state().closing());
    ui.harness.get_by_label("Close (Alt+C)").click();
    ui.harness.run_steps(2);
    assert!(ui.harness.state().closing(), "Close ends the app");
    // By keyboard alone too.
    let mut ui = self::ui(true);
    ui.updates.send(NetUpdate::Ended("You left the session.".into())).unwrap();
    ui.harness.run_steps(2);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::C);
    ui.harness.run_steps(2);
    assert!(ui.harness.state().closing());
}

/// An installed app that does not know its relay (no support.toml) or cannot use it says so in
/// its window, which only closes; a lost connection offers to try again instead.
#[test]
fn a_failure_that_cannot_be_retried_offers_close_and_one_that_can_offers_try_again() {
    let mut ui = ui(false);
    let message = "This support app does not know your help desk's server.".to_owned();
    ui.updates.send(NetUpdate::Failed { message: message.clone(), retry: false, new_code: false }).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label(&message);
    assert!(ui.harness.query_by_label("Try again").is_none());
    ui.harness.get_by_label("Close (Alt+C)").click();
    ui.harness.run_steps(2);
    assert!(ui.harness.state().closing());

    let mut ui = self::ui(true);
    ui.updates.send(NetUpdate::Failed { message: "The connection to the support server was lost.".into(), retry: true, new_code: false }).unwrap();
    ui.harness.run_steps(2);
    assert!(ui.harness.query_by_label("Close (Alt+C)").is_none());
    ui.harness.get_by_label("Try again").click();
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv(), Ok(UiAction::Retry)));
    assert_eq!(ui.harness.state().screen, Screen::Connecting);
}

/// The countdown is computed from the time the request arrived, not from how often the window
/// was painted: however many frames were skipped meanwhile (eframe does not paint a covered
/// window), the next one shows the time really left.
#[test]
fn the_countdown_follows_real_time_whatever_the_repaints() {
    let mut ui = ui(true);
    let _answer = ui.ask(Capabilities::VIEW, 3_000);
    ui.harness.get_by_label("Denied automatically in 3 s.");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    ui.harness.run_steps(1);
    ui.harness.get_by_label("Denied automatically in 2 s.");
}

fn line(from: ChatFrom, text: &str) -> ChatLine {
    ChatLine { from, at: Timestamp(1_800_000_000_000), text: text.into() }
}

#[test]
fn chat_before_consent_opens_on_a_technicians_line_and_shows_markup_as_text() {
    let mut ui = ui(true);
    ui.updates.send(connected()).unwrap();
    ui.harness.run_steps(2);
    // Closed at first; nothing shared, and the chat is there already.
    assert!(!ui.harness.state().chat_open());
    ui.harness.get_by_label("Chat with the technician (Alt+H)");
    let ada = ChatFrom::Technician { id: ADA, name: "Ada".into() };
    let markup = "<b>Hi</b>, I'm Ada from the help desk <img src=x onerror=alert(1)>";
    ui.updates.send(NetUpdate::Event(AgentEvent::Chat(line(ada, markup)))).unwrap();
    ui.harness.run_steps(2);
    assert!(ui.harness.state().chat_open(), "a technician's line opens the chat");
    ui.harness.get_by_label(markup);
    assert!(ui.harness.query_by_label_contains("Ada, ").is_some(), "the sender is named");

    // The end user answers with Enter; the line goes to the connection, trimmed.
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    ui.harness.run_steps(1);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("  hello Ada ");
    ui.harness.run_steps(1);
    ui.harness.key_press(egui::Key::Enter);
    ui.harness.run_steps(2);
    match ui.actions.try_recv().unwrap() {
        UiAction::Command(AgentCommand::Chat(text)) => assert_eq!(text, "hello Ada"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ui.harness.get_by_role(egui::accesskit::Role::TextInput).value().as_deref(), Some(""), "the field is emptied");
    // It shows when the relay sends it back, as "You".
    ui.updates.send(NetUpdate::Event(AgentEvent::Chat(line(ChatFrom::EndUser, "hello Ada")))).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("hello Ada");
    assert!(ui.harness.query_by_label_contains("You, ").is_some());
    // A blank line sends nothing.
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    ui.harness.run_steps(1);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("   ");
    ui.harness.key_press(egui::Key::Enter);
    ui.harness.run_steps(2);
    assert!(ui.actions.try_recv().is_err());
    // Alt+H closes it.
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::H);
    ui.harness.run_steps(2);
    assert!(!ui.harness.state().chat_open());
}

#[test]
fn the_chat_stays_out_of_the_consent_popup() {
    let mut ui = ui(true);
    let ada = ChatFrom::Technician { id: ADA, name: "Ada".into() };
    ui.updates.send(connected()).unwrap();
    ui.updates.send(NetUpdate::Event(AgentEvent::Chat(line(ada, "about to ask")))).unwrap();
    let _answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    assert!(ui.harness.state().asking());
    assert!(ui.harness.query_by_label("about to ask").is_none(), "only the question while it is asked");
    assert!(ui.harness.query_by_role(egui::accesskit::Role::TextInput).is_none());
}

#[test]
fn the_session_bars_access_keys_work_while_writing_in_the_chat() {
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW_AND_CONTROL);
    let ada = ChatFrom::Technician { id: ADA, name: "Ada".into() };
    ui.updates.send(NetUpdate::Event(AgentEvent::Chat(line(ada, "I am looking")))).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    ui.harness.run_steps(1);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("ok");
    ui.harness.run_steps(1);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::S);
    ui.harness.run_steps(2);
    let mut stopped = false;
    while let Ok(action) = ui.actions.try_recv() {
        stopped |= matches!(action, UiAction::Command(AgentCommand::StopSharing));
    }
    assert!(stopped, "Alt+S stops sharing even with the keyboard in the chat field");
}

/// Files and the clipboard are asked beside view and control: each is ticked (Allow grants
/// them), the end user may untick either, and view only grants neither.
#[test]
fn the_popup_names_files_and_clipboard_and_each_can_be_unticked() {
    let mut ui = ui(true);
    let answer = ui.ask(Capabilities::ALL, 30_000);
    ui.harness.get_by_label("With Allow, also:");
    ui.harness.get_by_label("share copied text both ways (what you copy goes to them)").click();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Allow (Alt+A)").click();
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::ALL.with_clipboard(false)));

    let answer = ui.ask(Capabilities::ALL, 30_000);
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::A);
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::ALL), "ticked by default");

    let answer = ui.ask(Capabilities::ALL, 30_000);
    ui.harness.get_by_label("Allow view only (Alt+V)").click();
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Granted(Capabilities::VIEW));

    // Asked for view and control only: no list of extras.
    let answer = ui.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    assert!(ui.harness.query_by_label("With Allow, also:").is_none());
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::D);
    ui.harness.run_steps(2);
    assert_eq!(answer.blocking_recv().unwrap(), ConsentOutcome::Denied);
}

/// The session bar says who may share copied text and what just passed (never the text), and
/// taking back control takes the clipboard with it.
#[test]
fn the_session_bar_shows_the_clipboard_and_control_takes_it_back() {
    use deskline_agent::ClipboardNote;
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW_AND_CONTROL.with_clipboard(true));
    ui.harness.get_by_label("Ada sees your screen and controls your mouse and keyboard, shares copied text");
    ui.updates.send(NetUpdate::Event(AgentEvent::Clipboard(ClipboardNote::Received { from: "Ada".into(), chars: 12 }))).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Ada put text on your clipboard (12 characters).");
    ui.updates.send(NetUpdate::Event(AgentEvent::Clipboard(ClipboardNote::TooLong { bytes: 40_000 }))).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("The text you copied is too long to share (40 KiB, at most 32 KiB): send it as a file.");
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::T);
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv().unwrap(), UiAction::Command(AgentCommand::TakeBackControl)));
    assert_eq!(ui.harness.state().granted(), Capabilities::VIEW);
    ui.harness.get_by_label("Ada sees your screen");
}

/// A technician's file is asked about in the session bar: where to save it (the Downloads
/// folder unless changed), Save or Decline by access key; progress and the result follow.
#[test]
fn a_file_from_the_technician_is_saved_where_the_end_user_says_or_declined() {
    use deskline_protocol::FileOffer;
    let mut ui = ui(true);
    ui.sharing(Capabilities::VIEW.with_files(true));
    ui.harness.get_by_label("Ada sees your screen, may pass files");
    let offer = |transfer| FileOffer { transfer, name: "driver.zip".into(), size: 2_345_678, sha256: [0; 32], from: "Ada".into() };
    ui.updates.send(NetUpdate::Event(AgentEvent::FileOffered(offer(1)))).unwrap();
    ui.updates.send(NetUpdate::Event(AgentEvent::FileOffered(offer(2)))).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Ada sends you a file: driver.zip (2.3 MB)");
    let field = ui.harness.get_by_role(egui::accesskit::Role::TextInput);
    field.focus();
    ui.harness.run_steps(1);
    ui.harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    ui.harness.get_by_role(egui::accesskit::Role::TextInput).type_text("/home/ada/Desktop");
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Save (Alt+Y)").click();
    ui.harness.run_steps(2);
    match ui.actions.try_recv().unwrap() {
        UiAction::Command(AgentCommand::AnswerFile { transfer: 1, save_to }) => {
            assert_eq!(save_to, Some(std::path::PathBuf::from("/home/ada/Desktop/driver.zip")));
        }
        other => panic!("{other:?}"),
    }
    // The second offer is asked next: declined by its access key.
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::N);
    ui.harness.run_steps(2);
    assert!(matches!(ui.actions.try_recv().unwrap(), UiAction::Command(AgentCommand::AnswerFile { transfer: 2, save_to: None })));
    assert!(ui.harness.query_by_label_contains("sends you a file").is_none());
    ui.updates.send(NetUpdate::Event(AgentEvent::FileProgress { transfer: 1, bytes: 1_000_000 })).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label_contains("Receiving driver.zip (2.3 MB)");
    let done = AgentEvent::FileDone { transfer: 1, incoming: true, name: "driver.zip".into(), saved: true, message: "driver.zip".into() };
    ui.updates.send(NetUpdate::Event(done)).unwrap();
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Saved driver.zip.");
    assert!(ui.harness.query_by_label_contains("Receiving").is_none());
}

/// "Send a file" opens the system's file dialog: the file chosen there is sent at once; a
/// cancelled dialog leaves the field to type a path in, and "Choose…" opens it again.
#[test]
fn a_file_chosen_in_the_systems_dialog_goes_to_the_technician() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let report = std::env::temp_dir().join("deskline-ui-report.txt");
    std::fs::write(&report, "printer log").unwrap();
    let opened = std::sync::Arc::new(AtomicUsize::new(0));
    let (counted, chosen) = (opened.clone(), report.clone());
    // The first dialog is cancelled, the second gives the report.
    let chooser = FileChooser::with(std::sync::Arc::new(move |_| (counted.fetch_add(1, Ordering::SeqCst) == 1).then(|| chosen.clone())));
    let mut ui = ui_choosing(true, chooser);
    ui.sharing(Capabilities::VIEW.with_files(true));

    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::F);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ui.harness.query_by_label("Choose the file in the window that opened, or type its path here.").is_some() || opened.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the dialog never closed");
        ui.harness.run_steps(1);
    }
    ui.harness.run_steps(2);
    ui.harness.get_by_label("File to send:");
    assert!(ui.actions.try_recv().is_err(), "a cancelled dialog sends nothing");

    ui.harness.get_by_label("Choose…").click();
    let sent = loop {
        assert!(std::time::Instant::now() < deadline, "the chosen file was never sent");
        ui.harness.run_steps(1);
        if let Ok(action) = ui.actions.try_recv() {
            break action;
        }
    };
    match sent {
        UiAction::Command(AgentCommand::SendFile { path, .. }) => assert_eq!(path, report),
        other => panic!("{other:?}"),
    }
    ui.harness.run_steps(1);
    ui.harness.get_by_label_contains("Sending deskline-ui-report.txt (11 bytes)");
    assert!(ui.harness.query_by_label("File to send:").is_none(), "the field closes once a file is chosen");
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

/// A file chosen while files were taken back (the dialog stayed open) is not sent — neither
/// then nor once files are allowed again.
#[test]
fn a_file_chosen_after_files_were_taken_back_is_not_sent() {
    let (choose, chosen) = std::sync::mpsc::channel::<std::path::PathBuf>();
    let chosen = std::sync::Mutex::new(chosen);
    let mut ui = ui_choosing(true, FileChooser::with(std::sync::Arc::new(move |_| chosen.lock().unwrap().recv().ok())));
    ui.sharing(Capabilities::VIEW.with_files(true));
    ui.harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::F);
    ui.harness.run_steps(2);
    ui.harness.get_by_label("Choose the file in the window that opened, or type its path here.");
    // The end user allows view alone now; then picks a file in the dialog still open.
    ui.sharing(Capabilities::VIEW);
    choose.send("/home/ada/report.txt".into()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ui.harness.query_by_label("Not sent: files are no longer allowed.").is_none() {
        assert!(std::time::Instant::now() < deadline, "the late choice was never noted");
        ui.harness.run_steps(1);
    }
    ui.sharing(Capabilities::VIEW.with_files(true));
    ui.harness.run_steps(3);
    assert!(ui.actions.try_recv().is_err(), "nothing sent");
}

#[test]
fn a_recorded_session_is_said_in_the_popup_and_while_sharing() {
    let mut other = ui(true);
    let mut ui = ui(true);
    ui.updates.send(connected()).unwrap();
    let (tx, _answer) = oneshot::channel();
    let recorded = ConsentRequest { recorded: true, ..request(Capabilities::VIEW_AND_CONTROL, 30_000) };
    ui.updates.send(NetUpdate::ConsentAsked(recorded, tx)).unwrap();
    ui.harness.run_steps(3);
    let notice = "This session is recorded: Example IT keeps a video of your screen while it is shared.";
    ui.harness.get_by_label(notice);
    ui.harness.get_by_label("Allow (Alt+A)").click();
    ui.harness.run_steps(2);
    ui.sharing(Capabilities::VIEW_AND_CONTROL);
    ui.harness.get_by_label(notice);
    // Not said of a session that is not recorded.
    other.ask(Capabilities::VIEW_AND_CONTROL, 30_000);
    assert!(other.harness.query_by_label(notice).is_none());
}
