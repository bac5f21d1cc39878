//! The relay's systemd unit (`installers/systemd/deskline-relay.service`, what the package
//! installs): valid for systemd and hardened. Checked offline with `systemd-analyze` (systemd
//! 252 from Debian, installed by `scripts/setup.sh`; no running systemd needed).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

const RELAY: &str = env!("CARGO_BIN_EXE_deskline-relay");

fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../installers/systemd/deskline-relay.service")
}

/// A file system root holding the system's own units, the relay at the unit's path and the
/// unit: what `systemd-analyze verify --root` reads.
fn root_with_unit() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    let copied = Command::new("cp").args(["-a", "/usr/lib/systemd/system"]).arg(r.join("usr/lib/systemd")).status().unwrap();
    assert!(copied.success());
    // A hard link where the file system allows it (the debug binary is large).
    let relay = r.join("usr/bin/deskline-relay");
    if std::fs::hard_link(RELAY, &relay).is_err() {
        std::fs::copy(RELAY, &relay).unwrap();
    }
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    std::fs::copy(unit(), r.join("etc/systemd/system/deskline-relay.service")).unwrap();
    root
}

fn analyze(args: &[&str], root: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(format!("--root={}", root.display()))
        .arg("deskline-relay.service")
        .output()
        .expect("systemd-analyze (Debian's systemd package, installed by scripts/setup.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_unit_is_valid_and_scores_as_hardened() {
    let root = root_with_unit();
    let (ok, text) = analyze(&["verify"], root.path());
    assert!(ok && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
    let (_, text) = analyze(&["security", "--offline=true"], root.path());
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for deskline-relay.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no score in:\n{text}"))
        .parse()
        .unwrap();
    assert!(score <= 2.0, "exposure {score} (want 2.0 or lower, \"OK\"):\n{text}");
}

#[test]
fn the_unit_runs_the_relay_with_the_packaged_config_as_its_own_user() {
    let text = std::fs::read_to_string(unit()).unwrap();
    let setting = |key: &str| text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).collect::<Vec<_>>();
    assert_eq!(setting("ExecStart"), ["/usr/bin/deskline-relay serve --config /etc/deskline/relay.toml"]);
    assert_eq!(setting("User"), ["deskline"]);
    assert_eq!(setting("StateDirectory"), ["deskline"]);
    assert_eq!(setting("Restart"), ["on-failure"]);
    assert_eq!(setting("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"], "port 443 and no other capability");
    assert_eq!(setting("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
    // The ExecStart's options parse (the relay refuses a missing config file by name).
    let out = Command::new(RELAY).args(["serve", "--config", "/nonexistent/relay.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/relay.toml"));
}
