//! The support app on a real X display (Xvfb), end to end with the real binaries: the relay,
//! `deskline-agent` capturing the display and injecting input, and the technician's `deskline`
//! CLI. The consent popup is answered through the real window, by its access key.
//!
//! Needs the workspace's binaries (`cargo test --workspace` builds them) and the X tools that
//! `scripts/setup.sh` installs (Xvfb, xdotool, xinput, xsetroot, ImageMagick).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cli, Desktop, Dialog, Guard, Relay, close_to, login, pixel, press_until, receive_copied, screenshot, send_with_dialog, start_relay, start_xvfb};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_deskline-agent");
const BACKGROUND: [u8; 3] = [0x33, 0x66, 0xcc];
const MARKER: [u8; 3] = [0xdd, 0x22, 0x22];
/// zenity's file dialog's window name (rfd does not pass the title on to zenity).
const ZENITY_FILE_DIALOG: &str = "zenity";


#[test]
fn the_support_app_shares_a_real_display_with_consent_and_takes_input() {
    let tmp = tempfile::tempdir().unwrap();
    let desktop = start_xvfb();
    desktop.x("xsetroot", &["-solid", "#3366cc"]);
    let marker = tmp.path().join("marker.png");
    let made = Command::new("convert").args(["-size", "240x160", "xc:#dd2222"]).arg(&marker).status().unwrap();
    assert!(made.success(), "ImageMagick convert");
    let _marker = desktop.spawn_x("display", &["-geometry", "+700+450", "-title", "marker", marker.to_str().unwrap()]);
    desktop.window("marker");

    let relay = start_relay(tmp.path());
    let cli = login(&relay, tmp.path());
    // A channel that records: the popup and the session bar say so.
    cli.ok(&["channels", "update", "Default", "--record-sessions", "true"]);
    let session = cli.json(&["session", "new", "--channel", "Default", "--pin"]);
    let id = session["id"].to_string();
    let pin = session["pin"].as_str().unwrap().to_owned();

    let home = tmp.path().join("home");
    let agent = Command::new(AGENT)
        .args(["--pin", &pin, "--relay", &relay.quic, "--fingerprint", &relay.fingerprint])
        .env("DISPLAY", &desktop.display)
        // No session bus, so no desktop portal: file dialogs are zenity's, on this display
        // (a developer's own portal would show them on their screen). No accessibility bus.
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .env("NO_AT_BRIDGE", "1")
        .env("HOME", &home)
        .env("XDG_STATE_HOME", tmp.path().join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    let mut agent = Guard(agent);
    if let Ok(Some(status)) = agent.0.try_wait() {
        panic!("the support app exited ({status})");
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = tmp.path().join("state/deskline/agent.log");
    let window = match desktop.try_window("Deskline support") {
        Some(w) => w,
        None => panic!(
            "no support app window; exit: {:?}; stderr: {}; log:\n{}",
            agent.0.try_wait(),
            std::fs::read_to_string(tmp.path().join("agent.err")).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    let v = cli.wait_for(&id, "active", |v| v["state"] == "active");
    assert_eq!(v["agent"]["displays"][0]["width"], 1280, "the app reported the real display");
    // ... and the machine's facts, read from this machine.
    let v = cli.wait_for(&id, "the machine facts", |v| !v["machine"].is_null());
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(v["machine"]["cpu_threads"].as_u64(), Some(cores), "{v}");
    assert!(v["machine"]["memory_bytes"].as_u64().unwrap() > 256 * 1024 * 1024, "{v}");
    assert!(!v["machine"]["cpu"].as_str().unwrap().is_empty(), "{v}");
    assert!(!v["machine"]["user_name"].as_str().unwrap().is_empty(), "the signed-in user: {v}");
    let shown = cli.ok(&["session", "show", &id]);
    assert!(shown.contains("processor:") && shown.contains("threads)") && shown.contains("started:"), "{shown}");
    std::thread::sleep(Duration::from_millis(500));
    screenshot(&desktop, &window, "agent-connected.png");

    // Nothing is visible before consent.
    let (ok, _, err) = cli.run(&["view", &id, "--headless", "--frames", "1", "--timeout", "2"], "");
    assert!(!ok && err.contains("not allowed viewing"), "{err}");

    // Chat before any consent: the technician's line opens the app's chat panel, and the end
    // user answers from the keyboard (Alt+H closes it, Alt+H again opens it with the keyboard
    // in its field).
    cli.ok(&["session", "chat", &id, "Hello, this is Ada from the help desk. I will ask to see your screen."]);
    std::thread::sleep(Duration::from_millis(800));
    screenshot(&desktop, &window, "agent-chat.png");
    // (Tried again if a key press was lost while the window took the focus, as with the other
    // access keys.)
    let answered = |chat: &Value| chat.as_array().is_some_and(|lines| lines.iter().any(|m| m["from"] == "end_user" && m["text"] == "ok, go ahead"));
    let mut chat = Value::Null;
    for _ in 0..3 {
        for _ in 0..2 {
            desktop.x("xdotool", &["windowfocus", "--sync", &window, "key", "alt+h"]);
            std::thread::sleep(Duration::from_millis(500));
        }
        desktop.x("xdotool", &["windowfocus", "--sync", &window, "type", "--delay", "30", "ok, go ahead"]);
        desktop.x("xdotool", &["windowfocus", "--sync", &window, "key", "Return"]);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !answered(&chat) {
            std::thread::sleep(Duration::from_millis(200));
            chat = cli.json(&["session", "chat", &id]);
        }
        if answered(&chat) {
            break;
        }
    }
    assert!(answered(&chat), "the end user's line never reached the relay: {chat}");

    cli.ok(&["session", "remote", &id, "--ask", "view,control,files,clipboard"]);
    std::thread::sleep(Duration::from_millis(800));
    screenshot(&desktop, &window, "agent-consent.png");
    // Answer through the real window with its access key, as a keyboard user would.
    assert!(press_until(&desktop, &window, "alt+a", false, &cli, &id, "granted"), "the consent popup did not take Alt+A");

    let shot = tmp.path().join("screen.png");
    let out = cli.ok(&["view", &id, "--headless", "--frames", "5", "--save-last", shot.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(1280), Some(800)));
    assert!(close_to(pixel(&shot, 1200, 100), BACKGROUND), "background: {:?}", pixel(&shot, 1200, 100));
    assert!(close_to(pixel(&shot, 820, 530), MARKER), "marker: {:?}", pixel(&shot, 820, 530));
    screenshot(&desktop, &window, "agent-sharing.png");

    // A file from the technician: the session bar asks where to save it (the Downloads folder,
    // made if missing), and Alt+Y saves it there.
    let sent_file = tmp.path().join("fix-printer.ps1");
    std::fs::write(&sent_file, "Restart-Service -Name Spooler\n").unwrap();
    let saved = home.join("Downloads/fix-printer.ps1");
    std::thread::scope(|s| {
        let sending = s.spawn(|| cli.run(&["session", "send", &id, sent_file.to_str().unwrap(), "--timeout", "60"], ""));
        std::thread::sleep(Duration::from_millis(1500));
        screenshot(&desktop, &window, "agent-file.png");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !saved.exists() {
            assert!(Instant::now() < deadline, "Alt+Y did not save the file");
            desktop.x("xdotool", &["windowfocus", "--sync", &window, "key", "alt+y"]);
            std::thread::sleep(Duration::from_millis(500));
        }
        let (ok, _, err) = sending.join().unwrap();
        assert!(ok, "{err}");
    });
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "Restart-Service -Name Spooler\n");

    // The end user sends a file with the system's file dialog: zenity's here (no desktop
    // portal runs on this display; the Wine test opens Windows' own). Its location field
    // (Ctrl+L) takes the path; Enter sends the file to the technician who waits for it.
    let report = home.join("Documents/printer report.txt");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    std::fs::write(&report, "Printer queue: 3 jobs stuck since 09:12\n").unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let dialog = Dialog { name: ZENITY_FILE_DIALOG, keys_first: &["ctrl+l"], path: report.to_str().unwrap() };
    let (ok, out, err) = send_with_dialog(&desktop, &window, false, &cli, &id, &inbox, &dialog);
    assert!(ok, "{out} {err}; app's log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(std::fs::read_to_string(inbox.join("printer report.txt")).unwrap(), "Printer queue: 3 jobs stuck since 09:12\n");

    // Input reaches the X server.
    let log = tmp.path().join("xinput.log");
    let _xinput = Guard(
        Command::new("xinput")
            .args(["test-xi2", "--root"])
            .env("DISPLAY", &desktop.display)
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    // Input travels technician → relay → app → X server asynchronously: wait (bounded) for
    // each effect to show up.
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "{what} never reached the X server");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    cli.ok(&["input", &id, "move", "321", "234"]);
    eventually("the pointer move", &|| {
        let location = desktop.x("xdotool", &["getmouselocation", "--shell"]);
        location.contains("X=321") && location.contains("Y=234")
    });
    cli.ok(&["input", &id, "click"]);
    eventually("the click", &|| std::fs::read_to_string(&log).unwrap().contains("RawButtonPress"));
    cli.ok(&["input", &id, "key", "KeyQ"]);
    eventually("KeyQ (keycode 24)", &|| {
        let events = std::fs::read_to_string(&log).unwrap();
        events.split("EVENT type").any(|e| e.contains("RawKeyPress") && e.contains("detail: 24"))
    });

    // Text arrives as the characters typed, whatever the keyboard layout: a focused window
    // (xev) sees their key symbols.
    let typed = tmp.path().join("xev.log");
    let _xev = Guard(
        Command::new("xev")
            .args(["-name", "typing-target", "-geometry", "200x100+900+620", "-event", "keyboard"])
            .env("DISPLAY", &desktop.display)
            .stdout(std::fs::File::create(&typed).unwrap())
            .spawn()
            .unwrap(),
    );
    let target = desktop.window("typing-target");
    desktop.x("xdotool", &["windowfocus", "--sync", &target]);
    // Typed with the layout's own keys and levels: Shift for "!" and "A" on the US layout.
    let typed_reaches = |text: &str, wanted: &[&str]| {
        cli.ok(&["input", &id, "type", text]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = std::fs::read_to_string(&typed).unwrap();
            if wanted.iter().all(|k| events.contains(k)) {
                break;
            }
            assert!(Instant::now() < deadline, "{text:?} never reached the focused window; xev saw:\n{events}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    typed_reaches("hi!A", &["keysym 0x68, h)", "keysym 0x69, i)", "keysym 0x21, exclam)", "keysym 0x41, A)"]);
    // The end user switches to a German layout: "@" is AltGr+Q there, "ü" a key of its own.
    desktop.x("setxkbmap", &["-layout", "de"]);
    typed_reaches("@ü", &["keysym 0x40, at)", "keysym 0xfc, udiaeresis)"]);

    // The mouse cursor is part of the picture: drawn where the pointer is, over the background.
    cli.ok(&["input", &id, "move", "1100", "150"]);
    eventually("the pointer move", &|| desktop.x("xdotool", &["getmouselocation", "--shell"]).contains("X=1100"));
    let with_cursor = tmp.path().join("cursor.png");
    // (Viewed again if the first picture came before the cursor moved: CI saw one, now and
    // then, with no cursor near the pointer; see the note on issue 17.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let cursor_pixels = loop {
        cli.ok(&["view", &id, "--headless", "--frames", "1", "--save-last", with_cursor.to_str().unwrap()]);
        let around = (1096..1105).flat_map(|x| (146..155).map(move |y| (x, y)));
        let cursor_pixels = around.filter(|&(x, y)| !close_to(pixel(&with_cursor, x, y), BACKGROUND)).count();
        if cursor_pixels >= 5 || Instant::now() > deadline {
            break cursor_pixels;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(cursor_pixels >= 5, "no cursor drawn at the pointer ({cursor_pixels} pixels differ)");
    assert!(close_to(pixel(&with_cursor, 1150, 200), BACKGROUND), "the cursor is small and only there");

    // Stop sharing from the session bar: it ends at once.
    // (Pressed again if a key press was lost while the window took the focus back.)
    assert!(press_until(&desktop, &window, "alt+s", false, &cli, &id, "none"), "Alt+S did not stop sharing");
    let (ok, _, _) = cli.run(&["view", &id, "--headless", "--frames", "1", "--timeout", "2"], "");
    assert!(!ok, "no frame after Stop sharing");

    // The technician closes the session: the window says so and its Close button (Alt+C)
    // ends the app.
    cli.ok(&["session", "close", &id]);
    std::thread::sleep(Duration::from_millis(800));
    screenshot(&desktop, &window, "agent-ended.png");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        desktop.x("xdotool", &["windowfocus", "--sync", &window, "key", "alt+c"]);
        std::thread::sleep(Duration::from_millis(400));
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the app did not end after Close");
    };
    assert!(status.success(), "the app ends cleanly: {status}");
}

/// Starts the support app on `desktop`, answering consent with "allow" by itself (this test
/// is about the picture, the other one about the consent window), and waits until viewing is
/// granted.
fn share_without_window(desktop: &Desktop, relay: &Relay, cli: &Cli, dir: &Path) -> (String, Guard) {
    share_asking(desktop, relay, cli, dir, "view,control")
}

/// [`share_without_window`], asking for `ask` (a capability list). The app's output goes to
/// `agent.out` in `dir`.
fn share_asking(desktop: &Desktop, relay: &Relay, cli: &Cli, dir: &Path, ask: &str) -> (String, Guard) {
    let session = cli.json(&["session", "new", "--channel", "Default", "--pin"]);
    let id = session["id"].to_string();
    let agent = Guard(
        Command::new(AGENT)
            .args(["--pin", session["pin"].as_str().unwrap(), "--relay", &relay.quic, "--fingerprint", &relay.fingerprint])
            .args(["--auto-consent", "allow"])
            .env("DISPLAY", &desktop.display)
            .env("XDG_STATE_HOME", dir.join("state"))
            .stdout(std::fs::File::create(dir.join("agent.out")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    cli.wait_for(&id, "active", |v| v["state"] == "active");
    cli.ok(&["session", "remote", &id, "--ask", ask]);
    cli.wait_for(&id, "granted", |v| v["consent"]["status"] == "granted");
    (id, agent)
}

/// The clipboard both ways with the real app on a real X display, read and set with xclip as
/// the end user's programs would: nothing passes without the end user's clipboard grant, what
/// was copied before the grant is never sent, and after it the technician's text lands on the
/// X clipboard and the end user's copy reaches the technician.
#[test]
fn copied_text_passes_both_ways_only_with_the_clipboard_grant() {
    let tmp = tempfile::tempdir().unwrap();
    let desktop = start_xvfb();
    let relay = start_relay(tmp.path());
    let cli = login(&relay, tmp.path());
    let (id, _agent) = share_without_window(&desktop, &relay, &cli, tmp.path());

    // View and control granted, not the clipboard.
    desktop.copy("a password copied before anyone asked");
    let (ok, _, err) = cli.run(&["clipboard", &id, "send", "from Ada"], "");
    assert!(!ok && err.contains("not allowed you the clipboard"), "{err}");
    let (ok, _, err) = cli.run(&["clipboard", &id, "receive", "--timeout", "5"], "");
    assert!(!ok && err.contains("not allowed you the clipboard"), "{err}");
    assert_eq!(desktop.clipboard(), "a password copied before anyone asked");

    // Asked again with the clipboard; the app allows what is asked.
    cli.ok(&["session", "remote", &id, "--ask", "view,control,clipboard"]);
    cli.wait_for(&id, "the clipboard granted", |v| v["consent"]["grants"][0]["capabilities"]["clipboard"] == true);
    let events = cli.json(&["session", "events", &id]);
    assert!(events.to_string().contains("\"clipboard\":true"), "the grant is in the trail: {events}");

    // (The app looks at the clipboard twice a second: given time to look a few times, it
    // would have sent what was there before the grant by now, were it to.)
    std::thread::sleep(Duration::from_millis(1500));

    // The technician's text lands on the end user's X clipboard.
    cli.ok(&["clipboard", &id, "send", "from Ada: ipconfig /all"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while desktop.clipboard() != "from Ada: ipconfig /all" {
        assert!(Instant::now() < deadline, "the X clipboard holds {:?}", desktop.clipboard());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The end user copies: the technician waiting for it gets that text (and not what was on
    // the clipboard before the grant). Copied again until the waiting technician has joined.
    let (ok, out, err) = receive_copied(&cli, &desktop, &id, "error 0x80070005, copy ");
    assert!(ok, "{err}");
    assert!(out.starts_with("error 0x80070005, copy "), "{out:?}");

    // Each pass is in the audit trail, by its size only.
    let trail = cli.json(&["session", "events", &id]);
    let passes: Vec<&Value> = trail.as_array().unwrap().iter().filter(|e| e["action"]["action"] == "clipboard").collect();
    assert!(passes.iter().any(|e| e["actor"]["kind"] == "technician" && e["action"]["bytes"] == 23), "{trail}");
    assert!(passes.iter().any(|e| e["actor"]["kind"] == "app"), "{trail}");
    assert!(!trail.to_string().contains("ipconfig"), "the text itself is never kept");
    // The app reported every copy it sent: never what was on the clipboard before the grant.
    let printed = std::fs::read_to_string(tmp.path().join("agent.out")).unwrap();
    assert!(printed.contains("clipboard from Administrator: 23 characters"), "{printed}");
    let before = "a password copied before anyone asked".len();
    let copied = out.trim_end_matches('\n').chars().count();
    assert!(printed.contains(&format!("clipboard sent: {copied} characters")), "{printed}");
    assert!(!printed.contains(&format!("clipboard sent: {before} characters")), "{printed}");
}

/// Views one frame of `display` and returns (width, height, PNG path).
fn view_display(cli: &Cli, id: &str, display: u32, png: &Path) -> (u64, u64) {
    let out = cli.ok(&["view", id, "--headless", "--frames", "1", "--display", &display.to_string(), "--save-last", png.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&out).unwrap();
    (report["width"].as_u64().unwrap(), report["height"].as_u64().unwrap())
}

#[test]
fn each_monitor_can_be_shared_and_a_resolution_change_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let desktop = start_xvfb();
    desktop.x("xsetroot", &["-solid", "#3366cc"]);
    // Two monitors side by side on one 1280x800 screen; a marker only on the right one.
    desktop.x("xrandr", &["--setmonitor", "left", "640/169x800/212+0+0", "none"]);
    desktop.x("xrandr", &["--setmonitor", "right", "640/169x800/212+640+0", "none"]);
    let marker = tmp.path().join("marker.png");
    assert!(Command::new("convert").args(["-size", "200x200", "xc:#dd2222"]).arg(&marker).status().unwrap().success());
    let _marker = desktop.spawn_x("display", &["-geometry", "+900+300", "-title", "marker", marker.to_str().unwrap()]);
    desktop.window("marker");

    let relay = start_relay(tmp.path());
    let cli = login(&relay, tmp.path());
    // The channel records its sessions: checked at the end against what the screen showed.
    cli.ok(&["channels", "update", "Default", "--record-sessions", "true"]);
    let (id, _agent) = share_without_window(&desktop, &relay, &cli, tmp.path());
    let displays = cli.json(&["session", "show", &id])["agent"]["displays"].clone();
    // Xvfb's own whole-screen monitor stays listed beside the two (their outputs are "none").
    let id_of = |name: &str| {
        let display = displays.as_array().unwrap().iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("no {name}: {displays}"));
        assert_eq!(display["width"], 640, "{displays}");
        u32::try_from(display["id"].as_u64().unwrap()).unwrap()
    };
    let (left, right) = (id_of("left"), id_of("right"));

    let shot = tmp.path().join("right.png");
    assert_eq!(view_display(&cli, &id, right, &shot), (640, 800));
    assert!(close_to(pixel(&shot, 900 - 640 + 100, 400), MARKER), "the right monitor shows the marker");
    assert!(close_to(pixel(&shot, 100, 100), BACKGROUND));
    // Pointer positions are in the shared monitor's pixels.
    cli.ok(&["input", &id, "move", "10", "20"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !desktop.x("xdotool", &["getmouselocation", "--shell"]).contains("X=650\nY=20") {
        assert!(Instant::now() < deadline, "the pointer did not land on the right monitor");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ok, _, err) = cli.run(&["view", &id, "--headless", "--frames", "1", "--display", "7"], "");
    assert!(!ok && err.contains("no display 7") && err.contains("right"), "an unknown display is refused by name: {err}");

    let shot = tmp.path().join("left.png");
    assert_eq!(view_display(&cli, &id, left, &shot), (640, 800));
    assert!(close_to(pixel(&shot, 900 - 640 + 100, 400), BACKGROUND), "the left monitor has no marker");

    // The screen shrinks (a resolution change): the stream follows with the new size.
    desktop.x("xrandr", &["--delmonitor", "left"]);
    desktop.x("xrandr", &["--delmonitor", "right"]);
    // Xvfb applies the new size but reports an error for its fixed output mode.
    let _ = Command::new("xrandr").args(["--fb", "1024x768"]).env("DISPLAY", &desktop.display).output();
    assert!(desktop.x("xdpyinfo", &[]).contains("1024x768 pixels"));
    let shot = tmp.path().join("resized.png");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let size = view_display(&cli, &id, 0, &shot);
        if size == (1024, 768) {
            break;
        }
        assert!(Instant::now() < deadline, "the stream kept its old size {size:?}");
    }
    assert!(close_to(pixel(&shot, 900 + 50, 300 + 50), MARKER), "the marker, now on the one screen");
    // The technicians' list of displays follows too.
    let v = cli.wait_for(&id, "the new display list", |v| v["agent"]["displays"].as_array().is_some_and(|d| d.len() == 1));
    assert_eq!((v["agent"]["displays"][0]["width"].as_u64(), v["agent"]["displays"][0]["height"].as_u64()), (Some(1024), Some(768)));

    // Each stretch of picture was recorded at the size it had; ffmpeg's decoder reads in each
    // file's last picture what the screen showed then: the right monitor with the marker, the
    // left one without, the resized screen with the marker where it is now.
    let deadline = Instant::now() + Duration::from_secs(20);
    let recordings = loop {
        let list = cli.json(&["session", "recordings", &id]);
        let done = list.as_array().unwrap().iter().all(|r| r["ended_at"].is_string());
        if done && list.as_array().unwrap().iter().any(|r| r["width"] == 1024) {
            break list.as_array().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "the recordings never all ended: {list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let monitors: Vec<[u8; 3]> = recordings
        .iter()
        .filter(|r| r["width"] == 640 && r["height"] == 800)
        .map(|r| pixel(&last_recorded_picture(&cli, r, tmp.path()), 900 - 640 + 100, 400))
        .collect();
    assert!(monitors.iter().any(|&p| close_to(p, MARKER)), "the right monitor's recording: {monitors:?} of {recordings:?}");
    assert!(monitors.iter().any(|&p| close_to(p, BACKGROUND)), "the left monitor's recording: {monitors:?}");
    let resized = recordings.iter().rev().find(|r| r["width"] == 1024 && r["height"] == 768).unwrap();
    let picture = last_recorded_picture(&cli, resized, tmp.path());
    assert!(close_to(pixel(&picture, 900 + 50, 300 + 50), MARKER) && close_to(pixel(&picture, 100, 100), BACKGROUND));
}

/// Downloads recording `rec` with the CLI (checking its timed log opens with the consent) and
/// returns its last picture as ffmpeg's own decoder reads it (a PNG).
fn last_recorded_picture(cli: &Cli, rec: &Value, dir: &Path) -> std::path::PathBuf {
    let id = rec["id"].to_string();
    let mp4 = dir.join(format!("recording-{id}.mp4"));
    let log = cli.json(&["session", "recording", &id, mp4.to_str().unwrap()]);
    assert_eq!(log[0]["kind"], "consent", "{log}");
    let png = dir.join(format!("recording-{id}.png"));
    let decoded = Command::new("ffmpeg").args(["-v", "error", "-y", "-i"]).arg(&mp4).args(["-update", "1"]).arg(&png).output().unwrap();
    assert!(decoded.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&decoded.stderr));
    png
}

#[test]
fn a_link_alone_is_enough_to_join() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = start_relay(tmp.path());
    let cli = login(&relay, tmp.path());
    let session = cli.json(&["session", "new", "--channel", "Default", "--link"]);
    let id = session["id"].to_string();
    // No --relay, no --fingerprint: the link says where to connect and which certificate to pin.
    let _agent = Guard(
        Command::new(AGENT)
            .args(["--link", session["link"].as_str().unwrap(), "--synthetic", "320x240", "--auto-consent", "deny"])
            .env("XDG_STATE_HOME", tmp.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    cli.wait_for(&id, "active", |v| v["state"] == "active");
}

/// Files both ways between the technician's CLI and the real app (answering by itself, as
/// `--auto-consent allow` does: saved into the end user's Downloads folder, never over a file
/// there), each checked whole by SHA-256 at its receiver.
#[test]
fn files_pass_between_the_cli_and_the_real_app() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let desktop = start_xvfb();
    let relay = start_relay(tmp.path());
    let cli = login(&relay, tmp.path());
    let home = tmp.path().join("home");
    let downloads = home.join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(downloads.join("setup.exe"), b"the end user's own setup.exe").unwrap();
    let setup = tmp.path().join("setup.exe");
    std::fs::write(&setup, (0..3_000_000u32).flat_map(|n| n.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let log = tmp.path().join("agent.out");

    let session = cli.json(&["session", "new", "--channel", "Default", "--pin"]);
    let id = session["id"].to_string();
    let mut agent = Guard(
        Command::new(AGENT)
            .args(["--pin", session["pin"].as_str().unwrap(), "--relay", &relay.quic, "--fingerprint", &relay.fingerprint])
            .args(["--auto-consent", "allow"])
            .env("DISPLAY", &desktop.display)
            .env("HOME", &home)
            .env("XDG_STATE_HOME", tmp.path().join("state"))
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    cli.wait_for(&id, "active", |v| v["state"] == "active");
    cli.ok(&["session", "remote", &id, "--ask", "view,files"]);
    cli.wait_for(&id, "files granted", |v| v["consent"]["grants"][0]["capabilities"]["files"] == true);

    // Technician → end user.
    let sent = cli.json(&["session", "send", &id, setup.to_str().unwrap()]);
    assert_eq!(sent["saved_as"], "setup (1).exe", "{sent}");
    assert_eq!(std::fs::read(downloads.join("setup (1).exe")).unwrap(), std::fs::read(&setup).unwrap());
    assert_eq!(std::fs::read(downloads.join("setup.exe")).unwrap(), b"the end user's own setup.exe");

    // End user → technician: the app sends a file when told so on its standard input, once the
    // technician is waiting for one (sent again until then: an offer nobody may take is refused).
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let report = home.join("report.txt");
    std::fs::write(&report, "Printer queue: 3 jobs stuck since 09:12\n").unwrap();
    let received = std::thread::scope(|s| {
        let waiting = s.spawn(|| cli.run(&["--json", "session", "receive", &id, inbox.to_str().unwrap(), "--timeout", "30"], ""));
        let stdin = agent.0.stdin.as_mut().unwrap();
        while !waiting.is_finished() {
            writeln!(stdin, "/send {}", report.display()).unwrap();
            std::thread::sleep(Duration::from_millis(700));
        }
        waiting.join().unwrap()
    });
    let (ok, out, err) = received;
    assert!(ok, "{err}");
    let saved: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(saved["saved"], inbox.join("report.txt").to_str().unwrap());
    assert_eq!(std::fs::read_to_string(inbox.join("report.txt")).unwrap(), "Printer queue: 3 jobs stuck since 09:12\n");
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(printed.contains("file saved: setup (1).exe") && printed.contains("file sent: report.txt"), "{printed}");

    // Both are in the session's history.
    let events = cli.ok(&["session", "events", &id]);
    assert!(events.contains("\"setup.exe\" (12000000 bytes") && events.contains("\"report.txt\""), "{events}");
}
