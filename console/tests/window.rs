//! The native viewer's window, driven like a technician would (egui_kittest, no relay).
#![allow(clippy::unwrap_used)]

use deskline_console::viewer::{DecodedFrame, ViewerCommand, ViewerUpdate};
use deskline_console::window::ViewerWindow;
use deskline_protocol::{Capabilities, ChatFrom, ChatLine, TechnicianId, Timestamp};
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use tokio::sync::mpsc;

const ME: TechnicianId = TechnicianId(1);

#[test]
fn chat_opens_on_the_end_users_line_and_typing_in_it_sends_no_input_to_the_remote_machine() {
    let (commands, mut sent) = mpsc::unbounded_channel();
    let (updates_tx, updates) = mpsc::channel(16);
    let window = ViewerWindow::new(commands, updates, ME, "Session 1".into());
    let mut harness = Harness::new_eframe(|_| window);
    // This technician controls the screen, which is shown.
    let frame = DecodedFrame { seq: 1, display: 0, width: 64, height: 48, rgb: vec![90; 64 * 48 * 3], latency_us: 0, bytes: 1 };
    updates_tx.try_send(ViewerUpdate::Frame(frame)).unwrap();
    updates_tx.try_send(ViewerUpdate::Allowed(Capabilities::VIEW_AND_CONTROL)).unwrap();
    updates_tx.try_send(ViewerUpdate::Controller(Some(ME))).unwrap();
    let markup = "<script>alert('x')</script> it says \"error 0x80070005\"";
    let line = ChatLine { from: ChatFrom::EndUser, at: Timestamp(1_800_000_000_000), text: markup.into() };
    updates_tx.try_send(ViewerUpdate::Chat(line)).unwrap();
    harness.run_steps(3);
    harness.get_by_label(markup);
    assert!(harness.query_by_label_contains("End user, ").is_some());

    harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    harness.run_steps(1);
    harness.get_by_role(egui::accesskit::Role::TextInput).type_text("try again now");
    harness.run_steps(1);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    let mut chat = Vec::new();
    while let Ok(command) = sent.try_recv() {
        match command {
            ViewerCommand::Chat(text) => chat.push(text),
            ViewerCommand::Input(event) => panic!("a key typed into the chat reached the remote machine: {event:?}"),
            _ => {}
        }
    }
    assert_eq!(chat, vec!["try again now".to_owned()]);

    // The same keys with the chat field left go to the remote machine: the check above could fail.
    harness.get_by_label("Hide chat").click();
    harness.run_steps(2);
    harness.key_press(egui::Key::A);
    harness.run_steps(2);
    let inputs = std::iter::from_fn(|| sent.try_recv().ok()).filter(|c| matches!(c, ViewerCommand::Input(_))).count();
    assert!(inputs > 0, "keys reach the remote machine outside the chat");
}
