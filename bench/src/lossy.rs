//! A lossy link between the support app and the relay: a small UDP proxy in this process
//! delays every datagram by 50 ms each way (100 ms round trip), drops 5 % of them at random,
//! and now and then drops everything for half a second (a loss burst). The app (its real
//! connection logic, the synthetic source really H.264-encoded) streams through the proxy to a
//! real relay; a native viewer watches over a clean path. Measured: how long after each burst
//! the viewer shows a picture captured after it, how many keyframes the app was asked for, and
//! how the app's rate adaptation moved.

use crate::stats::{Summary, summarize};
use anyhow::Context as _;
use deskline_agent::rate::Rate;
use deskline_agent::session::{AgentConfig, register};
use deskline_agent::{EncodeError, EncodedFrame, FrameSource, RecordingSink, ScriptedAnswer, ScriptedPrompt, SyntheticSource};
use deskline_console::viewer::{self, RelayTarget, ViewerCommand, ViewerUpdate};
use deskline_protocol::{AppCode, AppInfo, DisplayInfo, SessionId, TechnicianId};
use deskline_relay::server::LocalRelay;
use rand::RngExt as _;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// One-way delay of the link.
const ONE_WAY: Duration = Duration::from_millis(50);
/// Datagrams lost at random.
const LOSS: f64 = 0.05;
/// A loss burst: everything dropped for this long.
const BURST: Duration = Duration::from_millis(500);

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct LossyResult {
    /// Seconds streamed.
    pub seconds: f64,
    /// Loss bursts.
    pub bursts: usize,
    /// Per burst: from its end to the first decoded picture captured after it, ms.
    pub picture_after_burst_ms: Option<Summary>,
    /// The same, burst by burst (a burst with no picture after it is missing).
    pub picture_after_each_burst_ms: Vec<f64>,
    /// Frames the viewer decoded.
    pub frames_decoded: usize,
    /// Keyframes the app was asked for (beyond its first), per second over the run.
    pub keyframe_requests_per_s: f64,
    /// The most keyframe requests in any one second.
    pub keyframe_requests_max_in_1s: usize,
    /// Rate changes the app made, and how many reversed the previous change's direction.
    pub rate_changes: usize,
    /// See `rate_changes`.
    pub rate_reversals: usize,
    /// Rate changes in the last third of the run (settled: few).
    pub rate_changes_last_third: usize,
    /// The rate at the end.
    pub final_fps: u16,
    /// See `final_fps`.
    pub final_bitrate_kbps: u32,
}

/// What the app's source was asked.
#[derive(Default)]
struct Observed {
    keyframes: Vec<Instant>,
    rates: Vec<(Instant, Rate)>,
}

/// The synthetic source, recording forced keyframes and rate changes.
struct Watched {
    inner: SyntheticSource,
    observed: Arc<Mutex<Observed>>,
    first: bool,
}

impl FrameSource for Watched {
    fn displays(&self) -> Vec<DisplayInfo> {
        self.inner.displays()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        if force_keyframe && !self.first {
            self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keyframes.push(Instant::now());
        }
        self.first = false;
        self.inner.next_frame(force_keyframe)
    }

    fn set_rate(&mut self, rate: Rate) {
        self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rates.push((Instant::now(), rate));
        self.inner.set_rate(rate);
    }
}

/// The proxy: the app sends to `front`; datagrams go on to `relay` from a socket of their own.
async fn proxy(relay: SocketAddr, blackout: Arc<AtomicBool>) -> anyhow::Result<SocketAddr> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    back.connect(relay).await?;
    let address = front.local_addr()?;
    let app: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let lost = move |blackout: &AtomicBool| blackout.load(Ordering::Relaxed) || rand::rng().random_bool(LOSS);
    // App → relay.
    {
        let (front, back, app, blackout) = (front.clone(), back.clone(), app.clone(), blackout.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *app.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(from);
                if lost(&blackout) {
                    continue;
                }
                let (datagram, back) = (buf[..n].to_vec(), back.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(ONE_WAY).await;
                    let _ = back.send(&datagram).await;
                });
            }
        });
    }
    // Relay → app.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let to = *app.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(to) = to.filter(|_| !lost(&blackout)) else { continue };
            let (datagram, front) = (buf[..n].to_vec(), front.clone());
            tokio::spawn(async move {
                tokio::time::sleep(ONE_WAY).await;
                let _ = front.send_to(&datagram, to).await;
            });
        }
    });
    Ok(address)
}

/// Streams for `seconds` with a burst every 5 s after the first 5.
pub async fn run(seconds: f64) -> anyhow::Result<LossyResult> {
    let dir = tempfile::tempdir()?;
    let relay = LocalRelay::start(dir.path().join("relay"), "Bench")?;
    let crate::api::SignedIn { client: admin, token, .. } = crate::api::sign_in(&relay.base_url, &relay.fingerprint, "admin", &relay.admin_password).await?;
    let session = crate::api::pin_session(&admin).await?;
    let pin = session.pin.as_deref().context("pin")?.parse()?;
    let fingerprint = deskline_net::tls::parse_fingerprint(&relay.fingerprint)?;
    let blackout = Arc::new(AtomicBool::new(false));
    let front = proxy(relay.quic, blackout.clone()).await?;

    let config = AgentConfig { relay: front, server_name: "localhost".into(), fingerprint: Some(fingerprint), code: AppCode::Pin(pin), relays: Vec::new() };
    let info = AppInfo { os: "bench".into(), host_name: "lossy".into(), app_version: "0".into(), displays: vec![] };
    let registered = register(&config, info, None).await?;
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let watched = observed.clone();
    let make = move || Ok(Watched { inner: SyntheticSource::new(1280, 720)?, observed: watched, first: true });
    let prompt = Arc::new(ScriptedPrompt { answer: ScriptedAnswer::AllowAll, delay: Duration::ZERO });
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let app = tokio::spawn(async move {
        let _keep = (events_rx, commands);
        let _ = registered.serve(make, RecordingSink::default(), prompt, deskline_agent::grants::Grants::default(), events, commands_rx).await;
    });
    crate::api::ask_consent(&admin, session.id).await?;
    crate::api::wait_until(&admin, session.id, 200, Duration::from_millis(50), |s| s.consent.status == "granted").await?;

    let target = RelayTarget { quic: relay.quic, server_name: "localhost".into(), fingerprint };
    let (viewer_commands, mut updates) = viewer::join(&target, &token, SessionId(session.id), TechnicianId(1)).await?.spawn();
    // Decoded frames: when decoded, and when captured (the frame's own latency says).
    let decoded: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let frames = decoded.clone();
    let viewing = tokio::spawn(async move {
        while let Some(update) = updates.recv().await {
            match update {
                ViewerUpdate::Frame(frame) => {
                    let now = Instant::now();
                    let captured = now.checked_sub(Duration::from_micros(frame.latency_us)).unwrap_or(now);
                    frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((now, captured));
                }
                ViewerUpdate::Ended(e) => return Err(anyhow::anyhow!("the viewer ended: {e:?}")),
                _ => {}
            }
        }
        Ok(())
    });

    let started = Instant::now();
    let mut burst_ends = Vec::new();
    while started.elapsed().as_secs_f64() + 5.0 <= seconds {
        tokio::time::sleep(Duration::from_secs(5) - BURST).await;
        blackout.store(true, Ordering::Relaxed);
        tokio::time::sleep(BURST).await;
        blackout.store(false, Ordering::Relaxed);
        burst_ends.push(Instant::now());
    }
    tokio::time::sleep(Duration::from_secs_f64((seconds - started.elapsed().as_secs_f64()).max(0.0))).await;
    let elapsed = started.elapsed().as_secs_f64();
    // A viewer that ended by itself failed the run; one that ends after being told to leave did not.
    if viewing.is_finished() {
        viewing.await??;
    }
    viewer_commands.send(ViewerCommand::Leave).ok();
    app.abort();

    let decoded = decoded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let recovery: Vec<f64> = burst_ends
        .iter()
        .filter_map(|end| decoded.iter().find(|(_, captured)| captured > end).map(|(shown, _)| shown.duration_since(*end).as_secs_f64() * 1000.0))
        .collect();
    let observed = observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let keyframes: Vec<Instant> = observed.keyframes.iter().copied().filter(|t| *t >= started).collect();
    let max_in_1s = keyframes.iter().map(|t| keyframes.iter().filter(|u| **u >= *t && u.duration_since(*t) < Duration::from_secs(1)).count()).max().unwrap_or(0);
    let rates: Vec<(Instant, Rate)> = observed.rates.iter().copied().filter(|(t, _)| *t >= started).collect();
    let mut reversals = 0;
    let mut last_direction = 0i8;
    let mut previous = observed.rates.iter().rev().find(|(t, _)| *t < started).map(|(_, r)| *r);
    for (_, rate) in &rates {
        if let Some(p) = previous {
            let direction = if (rate.bitrate_bps, rate.fps) > (p.bitrate_bps, p.fps) { 1 } else { -1 };
            if last_direction != 0 && direction != last_direction {
                reversals += 1;
            }
            last_direction = direction;
        }
        previous = Some(*rate);
    }
    let last_third = started + Duration::from_secs_f64(elapsed * 2.0 / 3.0);
    let last = observed.rates.last().map(|(_, r)| *r);
    Ok(LossyResult {
        seconds: elapsed,
        bursts: burst_ends.len(),
        picture_after_burst_ms: summarize(&recovery),
        picture_after_each_burst_ms: recovery.iter().map(|ms| ms.round()).collect(),
        frames_decoded: decoded.len(),
        keyframe_requests_per_s: keyframes.len() as f64 / elapsed,
        keyframe_requests_max_in_1s: max_in_1s,
        rate_changes: rates.len(),
        rate_reversals: reversals,
        rate_changes_last_third: rates.iter().filter(|(t, _)| *t >= last_third).count(),
        final_fps: last.map_or(0, |r| r.fps),
        final_bitrate_kbps: last.map_or(0, |r| r.bitrate_bps / 1000),
    })
}

/// The result as a markdown table.
#[must_use]
pub fn table(r: &LossyResult) -> String {
    let (p50, p99) = r.picture_after_burst_ms.map_or(("-".into(), "-".into()), |s| (format!("{:.0}", s.p50), format!("{:.0}", s.p99)));
    format!(
        "| seconds | bursts | picture after a burst p50 ms | p99 ms | frames decoded | keyframe requests / s | most in 1 s | rate changes | reversals | changes in the last third | final rate |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {:.0} | {} | {p50} | {p99} | {} | {:.2} | {} | {} | {} | {} | {} fps, {} kbit/s |\n",
        r.seconds,
        r.bursts,
        r.frames_decoded,
        r.keyframe_requests_per_s,
        r.keyframe_requests_max_in_1s,
        r.rate_changes,
        r.rate_reversals,
        r.rate_changes_last_third,
        r.final_fps,
        r.final_bitrate_kbps
    )
}
