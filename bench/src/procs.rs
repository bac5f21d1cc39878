//! Processes the benchmarks start and measure: Xvfb displays, the workspace's release
//! binaries next to this one, and CPU time read from `/proc`.

use anyhow::{Context as _, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in MiB.
pub fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse::<f64>()? / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Pins the calling thread to CPU `core` (threads it starts afterwards inherit that), with
/// `taskset` as the relay processes are pinned.
pub fn pin_this_thread(core: usize) -> anyhow::Result<()> {
    let link = std::fs::read_link("/proc/thread-self")?;
    let tid = link.file_name().context("a thread id")?.to_string_lossy().into_owned();
    let status = Command::new("taskset").args(["-p", "-c", &core.to_string(), &tid]).stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("taskset could not pin thread {tid} to core {core}");
    }
    Ok(())
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
        use std::io::BufRead as _;
        // Xvfb picks a free display number itself and writes it to stdout once it is ready.
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", &format!("{width}x{height}x24"), "-noreset", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb")?;
        let stdout = child.stdout.take().context("Xvfb's stdout")?;
        let process = Reaped(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let n: u32 = line.trim().parse().map_err(|_| anyhow::anyhow!("Xvfb did not start: {line:?}"))?;
        let display = format!(":{n}");
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("xsetroot").args(["-solid", "#3366cc"]).env("DISPLAY", &display).status();
        Ok(Xvfb { process, display })
    }

    /// The X server's CPU seconds so far (on X11 the server does the copying for capture).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.process.0.id())
    }
}
