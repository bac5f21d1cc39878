//! The Windows support app, the real cross-built `deskline-agent.exe`, under Wine on a real X
//! display (Xvfb) with the real relay and the technician's CLI: it joins a PIN session, the
//! end user allows through the consent popup's access key, the technician sees the probe
//! window's colour at its place and a change on it, clicks and types into it ("hi!A@ü":
//! characters that need Shift, and one a US layout lacks), copied text passes both ways
//! through the Windows clipboard, the end user sends a file through Windows' own file dialog,
//! and Stop sharing ends it. Then an
//! end user downloads the .exe the invite page offers a Windows browser and runs it with no
//! arguments: it joins its link's session.
//!
//! Wine is not Windows: GDI capture, `SendInput` into Wine windows, the egui window through
//! WGL, and the plain-UDP QUIC fallback are what runs here. DXGI, UAC's secure desktop and
//! real DPI scaling only a Windows machine can confirm (README).
//!
//! Needs `scripts/build-windows.sh` to have built the .exe (the README's test command does),
//! and Wine and mingw-w64 (`scripts/setup.sh`). The probe window and the test-only
//! `bcryptprimitives.dll` shim (Wine 8 lacks `ProcessPrng`) are built here with mingw-w64.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cli, Desktop, Dialog, Guard, close_to, login, pixel, press_until, receive_copied, screenshot, send_with_dialog, start_relay_with, start_xvfb};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BACKGROUND: [u8; 3] = [0x33, 0x66, 0xcc];
/// The probe's colours before and after its first click (probe.c).
const PROBE: [u8; 3] = [0x22, 0xaa, 0x55];
const PROBE_CLICKED: [u8; 3] = [0xee, 0x88, 0x11];
/// Where the probe window is: right of and below where Wine puts the app's window.
const PROBE_RECT: (u32, u32, u32, u32) = (760, 420, 400, 300);
const WINDOWS_BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The cross-built support app.
fn windows_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
    let path = target.join("x86_64-pc-windows-gnu/dist/deskline-agent.exe");
    assert!(path.exists(), "{} is not built: run scripts/build-windows.sh (the README's test command does)", path.display());
    path
}

/// Compiles one of the C files next to this test with mingw-w64.
fn mingw(source: &str, output: &Path, args: &[&str]) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine").join(source);
    let out = Command::new("x86_64-w64-mingw32-gcc-posix").arg("-O2").arg("-o").arg(output).arg(&source).args(args).output().expect("mingw-w64 (scripts/setup.sh)");
    assert!(out.status.success(), "{}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
}

/// A Wine prefix of its own on the test's X display.
struct Wine<'a> {
    desktop: &'a Desktop,
    prefix: PathBuf,
}

impl Wine<'_> {
    fn command(&self, exe: &Path) -> Command {
        let mut command = Command::new("wine");
        command
            .arg(exe)
            .env("DISPLAY", &self.desktop.display)
            .env("WINEPREFIX", &self.prefix)
            // No prompts to install Mono or Gecko, no debug chatter.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("WINEDEBUG", "-all")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// The support app's log (`%LOCALAPPDATA%\Deskline\agent.log` in the prefix).
    fn agent_log(&self) -> String {
        let users = self.prefix.join("drive_c/users");
        std::fs::read_dir(&users)
            .into_iter()
            .flatten()
            .flatten()
            .map(|user| user.path().join("AppData/Local/Deskline/agent.log"))
            .find_map(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }
}

impl Drop for Wine<'_> {
    fn drop(&mut self) {
        let _ = Command::new("wineserver").arg("-k").env("WINEPREFIX", &self.prefix).status();
    }
}

fn start_wine<'a>(desktop: &'a Desktop, dir: &Path) -> Wine<'a> {
    let wine = Wine { desktop, prefix: dir.join("prefix") };
    let started = Instant::now();
    let status = Command::new("wineboot")
        .arg("--init")
        .env("DISPLAY", &desktop.display)
        .env("WINEPREFIX", &wine.prefix)
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env("WINEDEBUG", "-all")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("Wine (scripts/setup.sh)");
    assert!(status.success(), "wineboot failed");
    eprintln!("Wine prefix ready in {:?}", started.elapsed());
    wine
}

/// Waits (bounded) until `check` passes.
fn eventually(what: &str, seconds: u64, check: &dyn Fn() -> bool) {
    eventually_or(what, seconds, check, &String::new);
}

/// As [`eventually`], saying what was seen when it times out.
fn eventually_or(what: &str, seconds: u64, check: &dyn Fn() -> bool, seen: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: timed out; seen:\n{}", seen());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The probe's log: what it received.
fn probe_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The characters the probe received, in order.
fn typed(log: &str) -> String {
    log.lines()
        .filter_map(|l| l.strip_prefix("char U+"))
        .filter_map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32))
        .collect()
}


/// The app's window, or a failure that says what the app logged.
fn app_window(desktop: &Desktop, wine: &Wine, agent: &mut Guard) -> String {
    desktop.try_window("Deskline support").unwrap_or_else(|| {
        panic!("no support app window; exit: {:?}; log:\n{}", agent.0.try_wait(), wine.agent_log());
    })
}

#[test]
fn the_windows_support_app_under_wine_shares_the_screen_with_consent_and_takes_input() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = windows_exe();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    mingw("process_prng.c", &bin.join("bcryptprimitives.dll"), &["-shared", "-ladvapi32"]);
    mingw("probe.c", &bin.join("probe.exe"), &["-mwindows", "-static"]);
    let agent_exe = bin.join("deskline-agent.exe");
    std::fs::copy(&exe, &agent_exe).unwrap();

    let desktop = start_xvfb();
    desktop.x("xsetroot", &["-solid", "#3366cc"]);
    let wine = start_wine(&desktop, tmp.path());

    let probe_log_path = tmp.path().join("probe.log");
    let (px, py, pw, ph) = PROBE_RECT;
    let _probe = Guard(
        wine.command(&bin.join("probe.exe"))
            .arg(&probe_log_path)
            .args([px, py, pw, ph].map(|v| v.to_string()))
            .spawn()
            .unwrap(),
    );
    eventually("the probe window", 30, &|| probe_log(&probe_log_path).contains("ready"));

    let relay = start_relay_with(tmp.path(), &["--agent-binary", exe.to_str().unwrap()]);
    let cli: Cli = login(&relay, tmp.path());
    let session = cli.json(&["session", "new", "--channel", "Default", "--pin"]);
    let id = session["id"].to_string();
    let pin = session["pin"].as_str().unwrap().to_owned();

    // As IT deploys it on managed PCs: the relay in %ProgramData%\Deskline\support.toml, as
    // `deskline support-config` prints it; the end user gives only the PIN.
    let settings = wine.prefix.join("drive_c/ProgramData/Deskline");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(settings.join("support.toml"), cli.ok(&["support-config"])).unwrap();
    let started = Instant::now();
    let mut agent = Guard(wine.command(&agent_exe).args(["--pin", &pin]).spawn().unwrap());
    let v = cli.wait_for(&id, "active", |v| v["state"] == "active" && !v["agent"].is_null());
    eprintln!("the Windows app registered {:?} after start", started.elapsed());
    assert_eq!(v["agent"]["displays"][0]["width"], 1280, "the app reported the real display: {v}");
    assert!(v["agent"]["os"].as_str().unwrap_or_default().contains("Windows"), "the app says it runs on Windows: {v}");
    // The machine's facts, through the Windows calls (Wine answers them from this machine).
    let v = cli.wait_for(&id, "the machine facts", |v| !v["machine"].is_null());
    assert!(v["machine"]["memory_bytes"].as_u64().unwrap_or(0) > 256 * 1024 * 1024, "memory from GlobalMemoryStatusEx: {v}");
    assert!(v["machine"]["cpu_threads"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(!v["machine"]["user_name"].as_str().unwrap_or_default().is_empty(), "the signed-in user: {v}");
    let window = app_window(&desktop, &wine, &mut agent);

    // Nothing is visible before consent.
    let (ok, _, err) = cli.run(&["view", &id, "--headless", "--frames", "1", "--timeout", "2"], "");
    assert!(!ok && err.contains("not allowed viewing"), "{err}");

    screenshot(&desktop, &window, "agent-windows-connected.png");
    cli.ok(&["session", "remote", &id, "--ask", "view,control,clipboard,files"]);
    std::thread::sleep(Duration::from_millis(800));
    screenshot(&desktop, &window, "agent-windows-consent.png");
    // The end user answers in the popup with its access key, as a keyboard user would.
    assert!(press_until(&desktop, &window, "alt+a", false, &cli, &id, "granted"), "the consent popup did not take Alt+A; log:\n{}", wine.agent_log());

    // The technician sees the probe's colour at its place, and the background elsewhere.
    let inside = ((px + pw / 2) as usize, (py + ph / 2) as usize);
    let shot = tmp.path().join("screen.png");
    let out = cli.ok(&["view", &id, "--headless", "--frames", "5", "--save-last", shot.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(1280), Some(800)));
    assert!(close_to(pixel(&shot, inside.0, inside.1), PROBE), "probe: {:?}", pixel(&shot, inside.0, inside.1));
    assert!(close_to(pixel(&shot, (px - 20) as usize, (py + ph + 20) as usize), BACKGROUND), "background beside the probe");
    // Wine has no DXGI Desktop Duplication: the app fell back to GDI, and said so.
    let log = wine.agent_log();
    assert!(log.contains("no DXGI Desktop Duplication: capturing with GDI"), "log:\n{log}");

    // A click at a place inside the probe lands there, in screen pixels.
    let (cx, cy) = (px + 37, py + 53);
    cli.ok(&["input", &id, "move", &cx.to_string(), &cy.to_string()]);
    cli.ok(&["input", &id, "click"]);
    let clicked = format!("click left {cx} {cy}");
    eventually_or("the click in the probe", 15, &|| probe_log(&probe_log_path).contains(&clicked), &|| probe_log(&probe_log_path));
    // The probe turned orange: a change on screen reaches the technician.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        cli.ok(&["view", &id, "--headless", "--frames", "1", "--save-last", shot.to_str().unwrap()]);
        if close_to(pixel(&shot, inside.0, inside.1), PROBE_CLICKED) {
            break;
        }
        assert!(Instant::now() < deadline, "the change never arrived: {:?}", pixel(&shot, inside.0, inside.1));
    }

    // Text arrives as the characters typed, whatever the keyboard layout.
    cli.ok(&["input", &id, "type", "hi!A@ü"]);
    eventually_or("the typed text", 15, &|| typed(&probe_log(&probe_log_path)).contains("hi!A@ü"), &|| probe_log(&probe_log_path));
    // A physical key arrives as its key (Wine reports the virtual key the scan code means).
    cli.ok(&["input", &id, "key", "KeyQ"]);
    let key_q = || probe_log(&probe_log_path).lines().any(|l| l.starts_with("key 51 "));
    eventually_or("KeyQ as VK 0x51", 15, &key_q, &|| probe_log(&probe_log_path));

    // The clipboard both ways, through the Windows clipboard (Wine's, which it shares with
    // the X display's: read and set here with xclip).
    cli.ok(&["clipboard", &id, "send", "from Ada under Wine"]);
    let x_clipboard = || desktop.clipboard();
    eventually_or("the technician's text on the clipboard", 15, &|| x_clipboard() == "from Ada under Wine", &x_clipboard);
    let (ok, out, err) = receive_copied(&cli, &desktop, &id, "copied on Windows ");
    assert!(ok && out.starts_with("copied on Windows "), "{out:?} {err}; log:\n{}", wine.agent_log());

    // The end user sends a file through Windows' own file dialog (Wine's IFileOpenDialog):
    // the path typed into its file name field, Enter. (The probe holds Wine's focus since its
    // click: the end user clicks into the session bar first.)
    let report = tmp.path().join("printer report.txt");
    std::fs::write(&report, "Printer queue on Windows: 2 jobs stuck\r\n").unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // (Wine's drive Z: is the Unix root.)
    let windows_path = format!("Z:{}", report.display()).replace('/', "\\");
    let dialog = Dialog { name: "Send a file to the technician", keys_first: &[], path: &windows_path };
    let (ok, out, err) = send_with_dialog(&desktop, &window, true, &cli, &id, &inbox, &dialog);
    assert!(ok, "{out} {err}; log:\n{}", wine.agent_log());
    assert_eq!(std::fs::read_to_string(inbox.join("printer report.txt")).unwrap(), "Printer queue on Windows: 2 jobs stuck\r\n");

    // Stop sharing from the session bar: it ends at once.
    // The probe holds Wine's focus since its click: the end user clicks into the session bar
    // (an empty spot) first, as they would, then presses its access key.
    assert!(press_until(&desktop, &window, "alt+s", true, &cli, &id, "none"), "Stop sharing did not take Alt+S; log:\n{}", wine.agent_log());
    let (ok, _, _) = cli.run(&["view", &id, "--headless", "--frames", "1", "--timeout", "2"], "");
    assert!(!ok, "no frame after Stop sharing");
    drop(agent);

    // The invite page offers a Windows browser the .exe; downloaded, it runs with no arguments
    // and joins the session its link names.
    let session = cli.json(&["session", "new", "--channel", "Default", "--link"]);
    let link_id = session["id"].to_string();
    let page_url = session["link"].as_str().unwrap().split('#').next().unwrap().to_owned();
    let curl = |url: &str, output: Option<&Path>| {
        let mut command = Command::new("curl");
        command.args(["--silent", "--show-error", "--fail", "--insecure", "--user-agent", WINDOWS_BROWSER, url]);
        if let Some(path) = output {
            command.arg("--output").arg(path);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = curl(&page_url, None);
    assert!(page.contains("Download the support app for Windows") && page.contains("deskline-support.exe"), "{page}");
    let downloads = tmp.path().join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let downloaded = downloads.join("deskline-support.exe");
    curl(&format!("{page_url}/download"), Some(&downloaded));
    std::fs::copy(bin.join("bcryptprimitives.dll"), downloads.join("bcryptprimitives.dll")).unwrap();
    let mut downloaded_app = Guard(wine.command(&downloaded).spawn().unwrap());
    cli.wait_for(&link_id, "active", |v| v["state"] == "active");
    app_window(&desktop, &wine, &mut downloaded_app);
}
