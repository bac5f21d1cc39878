//! `deskline-bench`: runs the benchmarks and writes JSON and a markdown table.

use clap::{Parser, Subcommand};
use deskline_bench::content::Content;
use deskline_bench::plot::{Series, latency_cdf};
use deskline_bench::{BUILT_WITH_NASM, browser, capture, desktop, e2e, encode, glass, guessing, lossy, relay_load};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "deskline-bench", version, about = "Deskline benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Fewer frames and sizes (a few minutes).
    #[arg(long, global = true)]
    quick: bool,
    /// Where to write results.
    #[arg(long, global = true, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// openh264 (our path) vs libx264 on reproducible screen content.
    Encode,
    /// Real text scrolling at 1080p through every openh264 tuning and x264: times, PSNR, and
    /// crops of the last frame stacked for the eye (bench/plots/text-crops.png).
    TextCrops {
        /// Where the picture goes.
        #[arg(long, default_value = "bench/plots")]
        plots: PathBuf,
    },
    /// Capture → decoded and input → applied latency over loopback through a real relay:
    /// synthetic frames, then the real app on Xvfb at 30 and 60 fps.
    E2e,
    /// The real app's CPU use on an unchanged screen, against ffmpeg x11grab + libx264.
    Idle,
    /// The Windows support app under Wine next to the Linux one: size, start → waiting, CPU
    /// (needs scripts/build-windows.sh, Wine and mingw-w64).
    Windows {
        /// The cross-built .exe.
        #[arg(long, default_value = "target/x86_64-pc-windows-gnu/dist/deskline-agent.exe")]
        exe: std::path::PathBuf,
    },
    /// Capture → shown in headless Chromium through the relay's WebRTC gateway, side by side
    /// with the native viewer over QUIC on the same session (needs chromium, chromium-driver).
    Browser,
    /// Screen capture: scrap vs ffmpeg x11grab on Xvfb, X server CPU included.
    Capture,
    /// Glass to glass at 1080p30: a clock strip drawn on Xvfb, read back from decoded frames,
    /// through Deskline (the real app, a relay, a viewer) and through ffmpeg x11grab → x264 →
    /// UDP → ffmpeg on the same screen.
    Glass,
    /// (internal) draw the glass-to-glass clock strip on DISPLAY until killed.
    #[command(hide = true)]
    ClockWindow {
        #[arg(long)]
        display: String,
    },
    /// (internal) the relay benchmark's reference: a TLS-over-TCP forwarder on 127.0.0.1.
    #[command(hide = true)]
    TlsForwarder,
    /// (internal) capture frames on $DISPLAY and print the timings.
    #[command(hide = true)]
    CaptureProbe {
        #[arg(long)]
        frames: usize,
    },
    /// N sessions through one relay process: added latency vs direct, relay CPU per GB.
    Relay {
        /// Session counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sessions: Option<Vec<usize>>,
        /// Seconds measured per level.
        #[arg(long)]
        seconds: Option<f64>,
        /// Viewers per session (1 to 3).
        #[arg(long, default_value_t = 1)]
        viewers: usize,
    },
    /// PIN guessing against a real relay: wrong PINs evaluated per minute from one address and
    /// from a /16, and an honest end user's join during the attack.
    Guessing {
        /// Seconds per attack.
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// The end user taking back control while a technician's input streams in: input applied
    /// after the click, and when the relay took control away.
    Withdrawal {
        /// How many withdrawals.
        #[arg(long, default_value_t = 20)]
        times: usize,
    },
    /// The app streaming over a lossy link (100 ms RTT, 5 % loss, a 0.5 s burst every 5 s):
    /// picture after a burst, keyframe requests, rate adaptation.
    Lossy {
        /// Seconds streamed.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
    /// Several relay nodes on one PostgreSQL: API latency with one node and with three, a
    /// node's death → its app connected again elsewhere, and the media load through one node
    /// and three. Run it through scripts/with-postgres.sh (it needs a PostgreSQL server).
    Nodes {
        /// Create/read/close rounds per client (4 clients) for each setup.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Nodes killed, one after another.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Sessions (one viewer each, 30 fps) of the media load through one node and three
        /// (0: none).
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Seconds each media load is measured.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Everything.
    All,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::CaptureProbe { frames } = cli.command {
        return capture::probe(frames);
    }
    if let Command::TlsForwarder = cli.command {
        return deskline_bench::tls_forwarder::serve();
    }
    if let Command::ClockWindow { display } = &cli.command {
        return glass::clock_window(display);
    }
    if BUILT_WITH_NASM != "yes" {
        eprintln!("WARNING: openh264 was built WITHOUT nasm: its assembly is missing and encoding is about 3x slower.");
        eprintln!("WARNING: install nasm and rebuild (cargo clean -p openh264-sys2) before trusting encode numbers.");
    }
    std::fs::create_dir_all(&cli.out)?;
    let mut report = format!("# Deskline benchmark report\n\nopenh264 built with nasm: {BUILT_WITH_NASM}\n\n");
    let mut json = serde_json::Map::new();
    if matches!(cli.command, Command::Encode | Command::All) {
        let (sizes, frames): (&[(usize, usize)], usize) =
            if cli.quick { (&[(1280, 720), (1920, 1080)], 60) } else { (&[(1280, 720), (1920, 1080), (3840, 2160)], 150) };
        let bar = ProgressBar::new((sizes.len() * Content::ALL.len()) as u64);
        bar.set_style(ProgressStyle::with_template("encode {bar:40} {pos}/{len} {msg}")?);
        let mut sets = Vec::new();
        for &(w, h) in sizes {
            for content in Content::ALL {
                bar.set_message(format!("{content:?} {w}x{h}"));
                sets.push(encode::run_set(content, w, h, frames)?);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        report.push_str(&encode_table(&sets));
        json.insert("encode".into(), serde_json::to_value(&sets)?);
    }
    if let Command::TextCrops { plots } = &cli.command {
        let results = encode::text_crops(if cli.quick { 30 } else { 90 }, plots)?;
        report.push_str("## Real text at 1920x1080, scrolling, 4 Mbit/s, one thread\n\n| encoder | all-in ms | kbit/s | PSNR dB as shown | PSNR dB of frames coded | frames skipped |\n|---|---|---|---|---|---|\n");
        for r in &results {
            let _ = writeln!(
                report,
                "| {} | {} | {:.0} | {} | {} | {} |",
                r.encoder,
                r.all_in_ms_mean.map_or("-".into(), |v| format!("{v:.2}")),
                r.kbps,
                r.psnr_db.map_or("-".into(), |v| format!("{v:.1}")),
                r.psnr_coded_db.map_or("-".into(), |v| format!("{v:.1}")),
                r.skipped
            );
        }
        let _ = writeln!(report, "\nCrops of the last frame: {}\n", plots.join("text-crops.png").display());
        json.insert("text".into(), serde_json::to_value(&results)?);
    }
    if matches!(cli.command, Command::Glass | Command::All) {
        let runtime = tokio::runtime::Runtime::new()?;
        let results = runtime.block_on(glass::run(if cli.quick { 150 } else { 600 }))?;
        report.push_str("## Glass to glass, 1920x1080 at 30 fps (clock strip drawn → read from the decoded frame)\n\n| pipeline | frames | unreadable | fps received | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n");
        for r in &results {
            let (p50, p99) = ms(r.latency_ms);
            let _ = writeln!(report, "| {} | {} | {} | {:.1} | {p50} | {p99} |", r.pipeline, r.frames, r.unreadable, r.fps_received);
        }
        if let [ours, theirs] = &results[..]
            && let (Some(a), Some(b)) = (ours.latency_ms, theirs.latency_ms)
        {
            let _ = writeln!(report, "\nDeskline / reference: p50 {:.2}, p99 {:.2}\n", a.p50 / b.p50, a.p99 / b.p99);
        }
        json.insert("glass".into(), serde_json::to_value(&results)?);
    }
    if matches!(cli.command, Command::Capture | Command::All) {
        let (sizes, frames): (&[(usize, usize)], usize) =
            if cli.quick { (&[(1280, 720), (1920, 1080)], 100) } else { (&[(1280, 720), (1920, 1080), (3840, 2160)], 300) };
        let bar = ProgressBar::new(sizes.len() as u64);
        bar.set_style(ProgressStyle::with_template("capture {bar:40} {pos}/{len} {msg}")?);
        let mut results = Vec::new();
        for &(w, h) in sizes {
            bar.set_message(format!("{w}x{h}"));
            results.push(capture::run(w, h, frames)?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        report.push_str(&capture_table(&results));
        json.insert("capture".into(), serde_json::to_value(&results)?);
    }
    if matches!(cli.command, Command::E2e | Command::All) {
        let frames = if cli.quick { 150 } else { 600 };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_message("end-to-end latency, 1920x1080 at 30 fps");
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let result = runtime.block_on(e2e::run(1920, 1080, frames, 100))?;
        let mut screens = Vec::new();
        for fps in [30, 60] {
            spinner.set_message(format!("end-to-end latency, the real app on Xvfb 1920x1080, {fps} fps"));
            screens.push(runtime.block_on(desktop::screen_latency(1920, 1080, fps, frames))?);
        }
        spinner.finish_and_clear();
        report.push_str(&e2e_table(&result, &screens));
        let svg = cli.out.join("e2e-latency.svg");
        let mut series = vec![Series { name: format!("synthetic, {}x{} 30 fps", result.width, result.height), samples: &result.frame_samples_ms }];
        for s in &screens {
            series.push(Series { name: format!("real app on Xvfb, {}x{} {} fps", s.width, s.height, s.fps_asked), samples: &s.samples_ms });
        }
        latency_cdf(&svg, "Capture → decoded over loopback", &series)?;
        let _ = writeln!(report, "![end-to-end latency]({})\n", svg.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
        json.insert("e2e".into(), serde_json::to_value(&result)?);
        json.insert("e2e_screen".into(), serde_json::to_value(&screens)?);
    }
    if matches!(cli.command, Command::Browser | Command::All) {
        let seconds = if cli.quick { 10.0 } else { 30.0 };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let mut results = Vec::new();
        for (w, h) in [(1280, 720), (1920, 1080)] {
            spinner.set_message(format!("browser (WebRTC) and native viewer (QUIC), {w}x{h}, {seconds} s"));
            results.push(runtime.block_on(browser::run(w, h, seconds))?);
        }
        spinner.finish_and_clear();
        report.push_str(&browser_table(&results));
        json.insert("browser".into(), serde_json::to_value(&results)?);
    }
    if let Command::Windows { exe } = &cli.command {
        let seconds = if cli.quick { 5.0 } else { 20.0 };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("the Windows app under Wine next to the Linux app, {seconds} s per state"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let results = runtime.block_on(desktop::windows_vs_linux(exe, seconds))?;
        spinner.finish_and_clear();
        report.push_str(&windows_table(&results));
        json.insert("windows".into(), serde_json::to_value(&results)?);
    }
    if let Command::Withdrawal { times } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let r = runtime.block_on(e2e::withdrawal(*times))?;
        let (lp50, lp99) = ms(r.last_input_after_ms);
        let (rp50, rp99) = ms(r.relay_took_control_ms);
        let _ = write!(
            report,
            "## Taking back control\n\n| measure | p50 ms | p99 ms |\n|---|---|---|\n\
             | click → last input applied after it ({} inputs applied after {} clicks; {} in the 150 ms before them) | {lp50} | {lp99} |\n\
             | click → the relay took control away (viewer told) | {rp50} | {rp99} |\n\n",
            r.inputs_applied_after, r.withdrawals, r.inputs_applied_before
        );
        json.insert("withdrawal".into(), serde_json::to_value(&r)?);
    }
    if let Command::Lossy { seconds } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let r = runtime.block_on(lossy::run(*seconds))?;
        report.push_str("## A lossy link between the app and the relay\n\n");
        report.push_str(&lossy::table(&r));
        report.push('\n');
        json.insert("lossy".into(), serde_json::to_value(&r)?);
    }
    if let Command::Guessing { seconds } = &cli.command {
        let seconds = seconds.unwrap_or(if cli.quick { 20.0 } else { 60.0 });
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("PIN guessing from one address, then from a /16, {seconds} s each"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let results = runtime.block_on(guessing::run(seconds))?;
        spinner.finish_and_clear();
        report.push_str("## PIN guessing\n\n");
        report.push_str(&guessing::table(&results));
        report.push('\n');
        json.insert("guessing".into(), serde_json::to_value(&results)?);
    }
    if let Command::Nodes { rounds, runs, sessions, seconds } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("relay nodes: API latency, {runs} nodes killed, {sessions} sessions through one node and three"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let result = runtime.block_on(deskline_bench::nodes::run(*rounds, *runs, *sessions, *seconds))?;
        spinner.finish_and_clear();
        report.push_str("## Several relay nodes on one PostgreSQL

");
        report.push_str(&deskline_bench::nodes::table(&result));
        report.push('\n');
        json.insert("nodes".into(), serde_json::to_value(&result)?);
    }
    if matches!(cli.command, Command::Idle | Command::All) {
        let seconds = if cli.quick { 5.0 } else { 20.0 };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("CPU on an unchanged screen, {seconds} s per state"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let results = runtime.block_on(desktop::idle(seconds))?;
        spinner.finish_and_clear();
        report.push_str(&idle_table(&results));
        json.insert("idle".into(), serde_json::to_value(&results)?);
    }
    let relay_levels = match &cli.command {
        Command::Relay { sessions, seconds, viewers } => Some((
            sessions.clone().unwrap_or_else(|| default_levels(cli.quick)),
            seconds.unwrap_or(if cli.quick { 5.0 } else { 20.0 }),
            vec![*viewers],
        )),
        Command::All => Some((default_levels(cli.quick), if cli.quick { 5.0 } else { 20.0 }, vec![1, 3])),
        _ => None,
    };
    if let Some((levels, seconds, viewer_counts)) = relay_levels {
        // The relay runs on core 0 (see relay_load.rs); this load generator on core 1. Threads
        // created from here on inherit the affinity.
        let _ = std::process::Command::new("taskset").args(["-p", "-c", "1", &std::process::id().to_string()]).output();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let relay_binary = deskline_bench::procs::sibling_binary("deskline-relay", "deskline-relay")?;
        let runs: Vec<(usize, usize)> = viewer_counts
            .iter()
            .flat_map(|&v| levels.iter().filter(move |&&n| v == 1 || n <= MAX_SESSIONS_WITH_3_VIEWERS).map(move |&n| (v, n)))
            .collect();
        let bar = ProgressBar::new(runs.len() as u64);
        bar.set_style(ProgressStyle::with_template("relay load {bar:40} {pos}/{len} {msg}")?);
        let mut results = Vec::new();
        for &(viewers, n) in &runs {
            bar.set_message(format!("{n} sessions, {viewers} viewer(s) each"));
            results.push(runtime.block_on(relay_load::run(relay_load::Level { sessions: n, viewers, seconds, fps: 30 }, &relay_binary, relay_load::Baseline::Direct, relay_load::Deployment::SINGLE))?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        report.push_str(&relay_table(&results));
        let svg = cli.out.join("relay-latency.svg");
        let mut series = Vec::new();
        for r in &results {
            series.push(Series { name: format!("relay, {} x {}", r.sessions, r.viewers), samples: &r.relay_samples_ms });
            series.push(Series { name: format!("direct, {} x {}", r.sessions, r.viewers), samples: &r.direct_samples_ms });
        }
        latency_cdf(&svg, "Frame latency: through the relay vs direct", &series)?;
        let _ = writeln!(report, "![relay latency]({})\n", svg.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
        json.insert("relay".into(), serde_json::to_value(&results)?);
    }
    std::fs::write(cli.out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(cli.out.join("report.md"), &report)?;
    println!("{report}");
    println!("written: {}/results.json, {}/report.md", cli.out.display(), cli.out.display());
    Ok(())
}

fn ms(s: Option<deskline_bench::stats::Summary>) -> (String, String) {
    s.map_or(("-".into(), "-".into()), |s| (format!("{:.2}", s.p50), format!("{:.2}", s.p99)))
}

fn browser_table(results: &[browser::BrowserResult]) -> String {
    let mut t = String::from(
        "## The browser's view (WebRTC) next to the native viewer (QUIC)\n\n\
         One synthetic session at 30 fps watched at once by headless Chromium (the web console's \
         viewer: capture → frame about to be shown, read from a time stamp in the picture, so the \
         jitter buffer and decoder are included) and by the native viewer (capture → decoded).\n\n\
         Where the browser's time goes: capture → the frame's last packet received, and the \
         browser's decode time per frame (`requestVideoFrameCallback` metadata).\n\n\
         | size | WebRTC shown p50 / p99 ms | received p50 / p99 ms | browser decode p50 ms | frames shown/s | QUIC decoded p50 / p99 ms |\n|---|---|---|---|---|---|\n",
    );
    for r in results {
        let (w50, w99) = ms(r.webrtc_ms);
        let (r50, r99) = ms(r.webrtc_received_ms);
        let (d50, _) = ms(r.webrtc_decode_ms);
        let (q50, q99) = ms(r.quic_ms);
        let _ = writeln!(t, "| {}x{} | {w50} / {w99} | {r50} / {r99} | {d50} | {:.1} | {q50} / {q99} |", r.width, r.height, r.webrtc_fps);
    }
    t.push('\n');
    t
}

fn encode_table(sets: &[encode::SetResult]) -> String {
    let mut t = String::from(
        "## Encode\n\nms per frame of the encoder call (openh264: BGRA→I420 included; x264: not, ffmpeg converts \
         separately); all-in: mean ms per frame from BGRA frames to H.264, conversion included.\n\n\
         | content | size | encoder | threads | p50 ms | p99 ms | all-in ms | kbit/s | PSNR dB | PSNR dB coded | skipped |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in sets {
        for r in &s.results {
            let (p50, p99) = ms(r.ms_per_frame);
            let psnr = r.psnr_db.map_or("-".into(), |p| if p.is_finite() { format!("{p:.1}") } else { "lossless".into() });
            let all_in = r.all_in_ms_mean.map_or("-".into(), |m| format!("{m:.2}"));
            let coded = r.psnr_coded_db.map_or("-".into(), |p| if p.is_finite() { format!("{p:.1}") } else { "lossless".into() });
            let _ = writeln!(t, "| {:?} | {}x{} | {} | {} | {p50} | {p99} | {all_in} | {:.0} | {psnr} | {coded} | {} |", s.content, s.width, s.height, r.encoder, r.threads, r.kbps, r.skipped);
        }
    }
    // Each openh264 tuning against x264, one thread, all-in (below 1: openh264 is faster).
    let tunings: Vec<&str> = sets.first().map_or_else(Vec::new, |s| s.results.iter().filter(|r| r.threads == 1 && r.encoder != "x264").map(|r| r.encoder.as_str()).collect());
    t.push_str("\nall-in mean time per frame / x264's, one thread (below 1: openh264 is faster; \"screen\" is screen-content mode, \"camera\" camera mode, \"+bg\" background detection, \"+low\" low complexity, \"-skip\" no frame skipping):\n\n| content | size |");
    for name in &tunings {
        let _ = write!(t, " {name} |");
    }
    t.push_str("\n|---|---|");
    t.push_str(&"---|".repeat(tunings.len()));
    t.push('\n');
    for s in sets {
        let x264 = s.results.iter().find(|r| r.encoder == "x264" && r.threads == 1).and_then(|r| r.all_in_ms_mean);
        let _ = write!(t, "| {:?} | {}x{} |", s.content, s.width, s.height);
        for name in &tunings {
            let ours = s.results.iter().find(|r| r.encoder == *name && r.threads == 1).and_then(|r| r.all_in_ms_mean);
            let ratio = match (ours, x264) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            let _ = write!(t, " {ratio} |");
        }
        t.push('\n');
    }
    t.push('\n');
    t
}

fn e2e_table(r: &e2e::E2eResult, screens: &[desktop::ScreenLatency]) -> String {
    let (fp50, fp99) = ms(r.frame_latency_ms);
    let (ip50, ip99) = ms(r.input_latency_ms);
    let mut t = format!(
        "## End to end over loopback (real relay, QUIC + TLS)\n\n\
         | measure | p50 ms | p99 ms | fps received | app CPU % | X server CPU % |\n|---|---|---|---|---|---|\n\
         | capture → decoded, {}x{} synthetic, {} frames | {fp50} | {fp99} | - | - | - |\n",
        r.width, r.height, r.frames
    );
    for s in screens {
        let (p50, p99) = ms(s.latency_ms);
        let _ = writeln!(
            t,
            "| capture → decoded, real app on Xvfb {}x{}, {} fps asked, {} frames | {p50} | {p99} | {:.1} | {:.0} | {:.0} |",
            s.width, s.height, s.fps_asked, s.frames, s.fps_received, s.app_cpu_percent, s.xserver_cpu_percent
        );
    }
    let _ = writeln!(t, "| input sent → applied | {ip50} | {ip99} | - | - | - |\n");
    t
}

fn windows_table(results: &[desktop::AppCost]) -> String {
    let mut t = String::from(
        "## The Windows support app under Wine next to the Linux app (Xvfb 1920x1080)\n\n\
         CPU in percent of one core. Wine is not Windows: its GDI reads the X server's image, and\n\
         its input and window system run through wineserver.\n\n\
         | app | size MB | start → waiting ms | state | seconds | process CPU % | X server CPU % |\n|---|---|---|---|---|---|---|\n",
    );
    for app in results {
        for s in &app.states {
            let _ = writeln!(
                t,
                "| {} | {:.1} | {:.0} | {} | {:.0} | {:.2} | {:.2} |",
                app.app,
                app.exe_bytes as f64 / 1e6,
                app.start_to_waiting_ms,
                s.state,
                s.seconds,
                s.cpu_percent,
                s.xserver_cpu_percent
            );
        }
    }
    for app in results {
        if let Some(ms) = app.first_wine_start_ms {
            let _ = writeln!(t, "\nWine's own first start in the fresh prefix (wineserver, services; paid once per login): {ms:.0} ms; the app's start above was measured after it.");
        }
    }
    t.push('\n');
    t
}

fn idle_table(results: &[desktop::IdleResult]) -> String {
    let mut t = String::from(
        "## Unchanged screen (Xvfb 1920x1080)\n\nCPU in percent of one core; target for the app: under 1 %.\n\n\
         | what | seconds | process CPU % | X server CPU % |\n|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(t, "| {} | {:.0} | {:.2} | {:.2} |", r.state, r.seconds, r.cpu_percent, r.xserver_cpu_percent);
    }
    t.push('\n');
    t
}

/// Sessions with three viewers each are measured up to this level: beyond it the load
/// generator's one core cannot even drive one viewer each (see bench/RESULTS.md).
const MAX_SESSIONS_WITH_3_VIEWERS: usize = 200;

fn default_levels(quick: bool) -> Vec<usize> {
    if quick { vec![1, 10, 50] } else { vec![1, 10, 50, 100, 200, 400, 800] }
}

fn relay_table(results: &[relay_load::LoadResult]) -> String {
    let mut t = String::from(
        "## Relay load (30 fps per session: 8 KiB P-frames, 120 KiB keyframe every 2 s)\n\n\
         | sessions | viewers each | frames recv / expected | MB | relay p50 ms | relay p99 ms | direct p50 ms | direct p99 ms | added p50 ms | added p99 ms | relay CPU s | CPU s per GB | generator CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let (rp50, rp99) = ms(r.relay_ms);
        let (dp50, dp99) = ms(r.direct_ms);
        let added = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let per_gb = r.relay_cpu_s_per_gb.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} / {} | {:.1} | {rp50} | {rp99} | {dp50} | {dp99} | {} | {} | {:.2} | {per_gb} | {:.0} |",
            r.sessions, r.viewers, r.frames, r.frames_expected, r.megabytes, added(r.added_p50_ms), added(r.added_p99_ms), r.relay_cpu_s,
            r.generator_cpu_percent
        );
    }
    t.push_str(
        "\nThe same frames through the reference forwarder (TLS 1.3 over TCP, tokio + rustls with the same ring \
         suites, pinned to the relay's core, measured right after the relay), and CPU per frame delivered to a viewer:\n\n\
         | sessions | viewers each | reference frames | reference p50 ms | reference p99 ms | reference CPU s | reference CPU s per GB | relay / reference per GB | relay CPU µs per frame | reference CPU µs per frame |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let (fp50, fp99) = ms(r.reference_ms);
        let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let per_frame = |cpu: Option<f64>, frames: usize| opt(cpu.filter(|_| frames > 0).map(|c| c * 1e6 / frames as f64));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {fp50} | {fp99} | {} | {} | {} | {} | {} |",
            r.sessions,
            r.viewers,
            r.reference_frames,
            opt(r.reference_cpu_s),
            opt(r.reference_cpu_s_per_gb),
            opt(r.relay_over_reference),
            per_frame(Some(r.relay_cpu_s), r.frames),
            per_frame(r.reference_cpu_s, r.reference_frames)
        );
    }
    t.push_str(
        "\nMeanwhile (the same windows): a technician's API call every 50 ms, the relay's memory, and the frames viewers \
         missed (skipped to the next keyframe because they fell behind: stale; anything else: lost).\n\n\
         API p50/p99 are timed by the caller (which shares the load generator's core); \
         \"relay p99 ≤\" and \"within 100 ms\" by the relay's own histogram (`/metrics`) over the same calls.\n\n\
         | sessions | viewers each | API calls | API p50 ms | API p99 ms | relay API p99 ≤ ms | relay within 100 ms % | relay RSS MiB | relay peak RSS MiB | stale frames skipped | frames lost | viewers lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let (ap50, ap99) = ms(r.api_ms);
        let bound = r.api_relay_p99_at_most_ms.map_or("-".into(), |v| format!("{v:.0}"));
        let within = r.api_relay_within_100ms_percent.map_or("-".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {ap50} | {ap99} | {bound} | {within} | {:.0} | {:.0} | {} | {} | {} |",
            r.sessions, r.viewers, r.api_calls, r.relay_rss_mib, r.relay_peak_rss_mib, r.stale_skips, r.fresh_frames_lost, r.viewers_lost
        );
    }
    t.push('\n');
    t
}

fn capture_table(results: &[capture::CaptureResult]) -> String {
    let mut t = String::from(
        "## Capture on Xvfb (ms per frame; X server CPU counted separately)\n\n\
         | size | scrap p50 ms | scrap p99 ms | scrap X server CPU ms | ffmpeg x11grab ms (mean) | ffmpeg X server CPU ms |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in results {
        let (p50, p99) = ms(r.scrap_ms);
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(t, "| {}x{} | {p50} | {p99} | {:.2} | {} | {} |", r.width, r.height, r.scrap_xserver_ms, f(r.ffmpeg_ms), f(r.ffmpeg_xserver_ms));
    }
    t.push('\n');
    t
}
