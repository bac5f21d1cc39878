//! Processes the benchmarks start and measure: Xvfb displays, the workspace's release
//! binaries next to this one, and CPU time read from `/proc`.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A workspace binary next to this one (`cargo build --release -p CRATE` puts it there).
pub fn sibling_binary(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent")?.join(name);
    if !path.exists() {
        bail!("{} is missing: build it with `cargo build --release -p {package}`", path.display());
    }
    Ok(path)
}

/// CPU seconds a process has used so far (user + system), from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()? + fields.get(12).context("stime")?.parse::<f64>()?;
    // USER_HZ is 100 on every Linux this runs on.
    Ok(ticks / 100.0)
}

/// Kills its process when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh Xvfb display with a plain background, stopped when dropped.
pub struct Xvfb {
    process: Reaped,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    /// Starts one at `width` × `height`, 24-bit.
    pub fn start(width: usize, height: usize) -> anyhow::Result<Xvfb> {
        let n = (150..250).find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists()).context("no free display number")?;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", &format!("{width}x{height}x24"), "-noreset", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb")?;
        let process = Reaped(child);
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            if Instant::now() > deadline {
                bail!("Xvfb did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("xsetroot").args(["-solid", "#3366cc"]).env("DISPLAY", &display).status();
        Ok(Xvfb { process, display })
    }

    /// The X server's CPU seconds so far (on X11 the server does the copying for capture).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.process.0.id())
    }
}
