//! The native viewer's window, driven like a technician would (egui_kittest, no relay).
#![allow(clippy::unwrap_used)]

use deskline_console::viewer::{DecodedFrame, FileNews, ViewerCommand, ViewerUpdate};
use deskline_console::window::ViewerWindow;
use deskline_protocol::{Capabilities, ChatFrom, ChatLine, FileOffer, TechnicianId, Timestamp};
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

#[test]
fn files_are_sent_from_the_window_and_the_end_users_are_asked_about() {
    let (commands, mut sent) = mpsc::unbounded_channel();
    let (updates_tx, updates) = mpsc::channel(16);
    // The system's file dialog: cancelled the first time, the second gives a file.
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = opened.clone();
    let chooser = deskline_widgets::FileChooser::with(std::sync::Arc::new(move |_| {
        (counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1).then(|| "/tmp/chosen.log".into())
    }));
    let window = ViewerWindow::new(commands, updates, ME, "Session 1".into()).with_file_chooser(chooser);
    let mut harness = Harness::new_eframe(|_| window);
    // No files grant: no way to send one.
    updates_tx.try_send(ViewerUpdate::Allowed(Capabilities::VIEW_AND_CONTROL)).unwrap();
    harness.run_steps(2);
    assert!(harness.query_by_label("Send a file…").is_none());

    // With it: a path typed into the file field (keys there stay here) is sent.
    updates_tx.try_send(ViewerUpdate::Allowed(Capabilities::VIEW_AND_CONTROL.with_files(true))).unwrap();
    updates_tx.try_send(ViewerUpdate::Controller(Some(ME))).unwrap();
    harness.run_steps(2);
    harness.get_by_label("Send a file…").click();
    harness.run_steps(2);
    // (The dialog is cancelled: the field stays.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while opened.load(std::sync::atomic::Ordering::SeqCst) == 0 || egui_kittest::kittest::NodeT::accesskit_node(&harness.get_by_label("Choose…")).is_disabled() {
        assert!(std::time::Instant::now() < deadline, "the dialog never closed");
        harness.run_steps(1);
    }
    harness.get_by_role(egui::accesskit::Role::TextInput).focus();
    harness.run_steps(1);
    harness.get_by_role(egui::accesskit::Role::TextInput).type_text("/tmp/report.pdf");
    harness.run_steps(1);
    harness.get_by_label("Send").click();
    harness.run_steps(2);
    let commands: Vec<ViewerCommand> = std::iter::from_fn(|| sent.try_recv().ok()).collect();
    assert!(!commands.iter().any(|c| matches!(c, ViewerCommand::Input(_))), "typing the path sent keys: {commands:?}");
    assert!(commands.contains(&ViewerCommand::SendFile("/tmp/report.pdf".into())), "{commands:?}");

    // A file chosen in the system's dialog is sent at once.
    harness.get_by_label("Send a file…").click();
    let chosen = loop {
        assert!(std::time::Instant::now() < deadline, "the chosen file was never sent");
        harness.run_steps(1);
        if let Ok(command) = sent.try_recv() {
            break command;
        }
    };
    assert_eq!(chosen, ViewerCommand::SendFile("/tmp/chosen.log".into()));
    harness.run_steps(1);
    assert!(harness.query_by_label("or its path:").is_none(), "the field closes once a file is chosen");

    // Its progress, then its result.
    let progress = FileNews::Progress { transfer: 5, name: "report.pdf".into(), incoming: false, bytes: 50, size: 100 };
    updates_tx.try_send(ViewerUpdate::File(progress)).unwrap();
    harness.run_steps(2);
    harness.get_by_label("Sending “report.pdf”");
    let done = FileNews::Done { transfer: 5, name: "report.pdf".into(), incoming: false, saved: true, message: "report.pdf".into() };
    updates_tx.try_send(ViewerUpdate::File(done)).unwrap();
    harness.run_steps(2);
    assert!(harness.query_by_label("Sending “report.pdf”").is_none());
    harness.get_by_label("“report.pdf” saved on the end user's computer");

    // The end user's offer: asked, declined.
    let offer = FileOffer { transfer: 9, name: "log.txt".into(), size: 3 * 1024 * 1024, sha256: [0; 32], from: "the end user".into() };
    updates_tx.try_send(ViewerUpdate::File(FileNews::Offered(offer))).unwrap();
    harness.run_steps(2);
    harness.get_by_label("The end user sends you “log.txt” (3.0 MB).");
    harness.get_by_label("Save in Downloads");
    harness.get_by_label("Decline").click();
    harness.run_steps(2);
    assert_eq!(sent.try_recv().unwrap(), ViewerCommand::AnswerFile { transfer: 9, save_in: None });
    assert!(harness.query_by_label_contains("log.txt").is_none(), "the offer is gone once answered");
}

/// A file chosen after the end user took files back (the dialog stayed open) is not sent.
#[test]
fn a_file_chosen_after_files_were_taken_back_is_not_sent() {
    let (commands, mut sent) = mpsc::unbounded_channel();
    let (updates_tx, updates) = mpsc::channel(16);
    let (choose, chosen) = std::sync::mpsc::channel::<std::path::PathBuf>();
    let chosen = std::sync::Mutex::new(chosen);
    let chooser = deskline_widgets::FileChooser::with(std::sync::Arc::new(move |_| chosen.lock().unwrap().recv().ok()));
    let window = ViewerWindow::new(commands, updates, ME, "Session 1".into()).with_file_chooser(chooser);
    let mut harness = Harness::new_eframe(|_| window);
    updates_tx.try_send(ViewerUpdate::Allowed(Capabilities::VIEW_AND_CONTROL.with_files(true))).unwrap();
    harness.run_steps(2);
    harness.get_by_label("Send a file…").click();
    harness.run_steps(2);
    updates_tx.try_send(ViewerUpdate::Allowed(Capabilities::VIEW_AND_CONTROL)).unwrap();
    harness.run_steps(2);
    choose.send("/tmp/late.log".into()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while harness.query_by_label("Not sent: the end user no longer allows files.").is_none() {
        assert!(std::time::Instant::now() < deadline, "the late choice was never noted");
        harness.run_steps(1);
    }
    let commands: Vec<ViewerCommand> = std::iter::from_fn(|| sent.try_recv().ok()).collect();
    assert!(!commands.iter().any(|c| matches!(c, ViewerCommand::SendFile(_))), "{commands:?}");
}
