//! The browser's view through the relay's WebRTC gateway, side by side with the native
//! viewer over QUIC, both watching the same session in the same run.
//!
//! The support app (the synthetic source, in this process) stamps each frame's capture time in
//! its pixels (`deskline_agent::source::stamp`). Headless Chromium runs the real web console:
//! signed in, "View in browser"; a script reads the stamp back from every frame the page is
//! about to show (`requestVideoFrameCallback`), so capture → shown in the browser is measured
//! from the picture itself, jitter buffer and decoder included. The native viewer reports
//! capture → decoded from the frames' capture timestamps. Same machine, same clock.

use crate::e2e::SyntheticSession;
use crate::procs::Reaped;
use crate::stats::{Summary, summarize};
use anyhow::Context as _;
use deskline_agent::source::{STAMP_BITS, STAMP_CELL, STAMP_X, STAMP_Y};
use deskline_console::viewer::ViewerUpdate;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserResult {
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Capture → shown by Chromium (WebRTC), milliseconds.
    pub webrtc_ms: Option<Summary>,
    /// Capture → the frame's last packet received by the browser, milliseconds.
    pub webrtc_received_ms: Option<Summary>,
    /// The browser's decode time per frame (`processingDuration`), milliseconds.
    pub webrtc_decode_ms: Option<Summary>,
    /// Frames the page showed per second.
    pub webrtc_fps: f64,
    /// Capture → decoded by the native viewer (QUIC), milliseconds, same session, same time.
    pub quic_ms: Option<Summary>,
}

/// Frames skipped at the start (decoder warm-up, the first keyframe).
const WARMUP_FRAMES: usize = 15;

/// Headless Chromium through chromedriver (both from Debian's packages), in their own process
/// group so that every Chromium process ends with the returned guard.
async fn chromium(profile: &std::path::Path) -> anyhow::Result<(Reaped, Client)> {
    let mut child = Command::new("chromedriver")
        .arg("--port=0")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
    let stdout = child.stdout.take().context("chromedriver's stdout")?;
    let driver = Reaped(child);
    let mut port = None;
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(p) = line?.strip_prefix("ChromeDriver was started successfully on port ") {
            port = Some(p.trim_end_matches('.').to_owned());
            break;
        }
    }
    let port = port.context("chromedriver did not start")?;
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--window-size=1600,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let Value::Object(capabilities) =
        json!({"acceptInsecureCerts": true, "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}})
    else {
        unreachable!("an object")
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?;
    Ok((driver, client))
}

/// The page script: from every frame about to be shown, read the capture-time stamp and
/// record (now − stamp) in `window.latencies`.
fn measuring_script() -> String {
    format!(
        "const v = document.getElementById('screen');
         const c = document.createElement('canvas');
         const g = c.getContext('2d', {{ willReadFrequently: true }});
         window.latencies = [];
         window.received = [];
         window.decoding = [];
         const wrap = (t) => (t % 4294967296 + 4294967296) % 4294967296;
         const frame = () => v.requestVideoFrameCallback((now, meta) => {{
           const shown = wrap(Date.now());
           c.width = v.videoWidth; c.height = v.videoHeight;
           g.drawImage(v, 0, 0);
           const row = g.getImageData({x}, {y}, {bits} * {cell}, 1).data;
           let stamp = 0;
           for (let i = 0; i < {bits}; i++) {{
             const p = (i * {cell} + {half}) * 4;
             stamp = stamp * 2 + (row[p] + row[p + 1] + row[p + 2] > 384 ? 1 : 0);
           }}
           window.latencies.push(wrap(shown - stamp));
           if (meta.receiveTime !== undefined) window.received.push(wrap(performance.timeOrigin + meta.receiveTime - stamp));
           if (meta.processingDuration !== undefined) window.decoding.push(meta.processingDuration * 1000);
           frame();
         }});
         frame();",
        x = STAMP_X,
        y = STAMP_Y + STAMP_CELL / 2,
        bits = STAMP_BITS,
        cell = STAMP_CELL,
        half = STAMP_CELL / 2,
    )
}

/// Watches a `width` × `height` synthetic session for `seconds` in Chromium and in the native
/// viewer at once.
pub async fn run(width: u32, height: u32, seconds: f64) -> anyhow::Result<BrowserResult> {
    let session = SyntheticSession::start(width, height).await?;
    let profile = tempfile::tempdir()?;
    let (_driver, browser) = chromium(profile.path()).await?;

    // The real console, signed in with the admin's token, viewing the session.
    browser.goto(&session.relay.base_url).await?;
    browser.execute("sessionStorage.setItem('deskline.token', arguments[0])", vec![json!(session.token)]).await?;
    browser.refresh().await?;
    let row = browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#sessions tbody tr")).await?;
    row.click().await?;
    let view = "//div[@id='actions']/button[normalize-space()='View in browser']";
    browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath(view)).await?.click().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.execute("return document.getElementById('screen').videoWidth", vec![]).await? != json!(width) {
        anyhow::ensure!(Instant::now() < deadline, "the browser never showed the picture");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.execute(&measuring_script(), vec![]).await?;

    // The native viewer, at the same time.
    let (commands, mut updates) = session.native_viewer().await?.spawn();
    let started = Instant::now();
    let mut quic = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        match tokio::time::timeout(Duration::from_secs(10), updates.recv()).await? {
            Some(ViewerUpdate::Frame(frame)) => quic.push(frame.latency_us as f64 / 1000.0),
            Some(ViewerUpdate::Ended(e)) => anyhow::bail!("the native viewer ended: {e:?}"),
            Some(_) => {}
            None => anyhow::bail!("the native viewer stopped"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut series = Vec::new();
    for name in ["latencies", "received", "decoding"] {
        let values = browser.execute(&format!("return window.{name}"), vec![]).await?;
        series.push(values.as_array().context("a series")?.iter().filter_map(Value::as_f64).collect::<Vec<f64>>());
    }
    commands.send(deskline_console::viewer::ViewerCommand::Leave).ok();
    let _ = browser.close().await;
    let webrtc_fps = series[0].len() as f64 / elapsed;
    let skip = |v: &[f64]| v.iter().skip(WARMUP_FRAMES).copied().collect::<Vec<_>>();
    Ok(BrowserResult {
        width,
        height,
        webrtc_ms: summarize(&skip(&series[0])),
        webrtc_received_ms: summarize(&skip(&series[1])),
        webrtc_decode_ms: summarize(&skip(&series[2])),
        webrtc_fps,
        quic_ms: summarize(&skip(&quic)),
    })
}
