//! Relay load: N sessions through one relay process, each a synthetic app sending 30 frames a
//! second (8 KiB P-frames, a 120 KiB keyframe every 2 s at a random phase) to its viewer(s).
//! Added latency is the relay path minus the same traffic over direct QUIC connections in the
//! same run; relay CPU comes from the relay process's own accounting (/proc), with the relay
//! pinned to one core and this load generator to the other.

use crate::stats::{Summary, summarize};
use anyhow::{Context as _, bail};
use deskline_agent::session::{AgentConfig, register};
use deskline_agent::{EncodeError, EncodedFrame, FrameSource, RecordingSink, ScriptedAnswer, ScriptedPrompt};
use deskline_api::{ChannelView, CreateTechnician, Role, SessionView, TechnicianRef, TechnicianView};
use deskline_net::framed::{open_control, read_frame, send_frame};
use deskline_protocol::{AppCode, AppInfo, DisplayInfo, Hello, HelloRole, Message, PROTOCOL_VERSION, SessionId, VideoCodec, VideoFrame};
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes in a P-frame.
pub const P_FRAME_BYTES: usize = 8 * 1024;
/// Bytes in a keyframe.
pub const KEYFRAME_BYTES: usize = 120 * 1024;
/// Frames between keyframes (2 s at 30 fps).
pub const KEYFRAME_EVERY: u64 = 60;

/// One load level.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Sessions.
    pub sessions: usize,
    /// Viewers per session (each a different technician on the session).
    pub viewers: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Frames the viewers received through the relay.
    pub frames: usize,
    /// Frames the apps produced in the window (at most; the pacing is best effort).
    pub frames_expected: usize,
    /// Megabytes forwarded to viewers.
    pub megabytes: f64,
    /// App → viewer through the relay, ms.
    pub relay_ms: Option<Summary>,
    /// The same traffic sender → receiver directly, ms.
    pub direct_ms: Option<Summary>,
    /// relay p50 − direct p50, ms.
    pub added_p50_ms: Option<f64>,
    /// relay p99 − direct p99, ms.
    pub added_p99_ms: Option<f64>,
    /// CPU seconds the relay process used in the window.
    pub relay_cpu_s: f64,
    /// Relay CPU seconds per GB forwarded.
    pub relay_cpu_s_per_gb: Option<f64>,
    /// The load generator's (this process's) CPU use in the window, percent of its one core:
    /// near 100 means the generator, not the relay, is what limits the level.
    pub generator_cpu_percent: f64,
    /// A technician's API call (`GET /sessions`, their Home) every 50 ms during the window,
    /// answered in this many ms.
    pub api_ms: Option<Summary>,
    /// API calls made in the window (none failed, or the run fails).
    pub api_calls: usize,
    /// The relay's resident memory at the end of the window and at its peak, MiB.
    pub relay_rss_mib: f64,
    /// See `relay_rss_mib`.
    pub relay_peak_rss_mib: f64,
    /// Every latency sample through the relay (for plots).
    #[serde(skip)]
    pub relay_samples_ms: Vec<f64>,
    /// Every latency sample over the direct connections (for plots).
    #[serde(skip)]
    pub direct_samples_ms: Vec<f64>,
}

fn now_us() -> u64 {
    deskline_agent::source::now_us()
}

/// Frames of the sizes above, random content (the relay never decodes).
struct BlobSource {
    n: u64,
    phase: u64,
    rng: rand::rngs::StdRng,
}

impl FrameSource for BlobSource {
    fn displays(&self) -> Vec<DisplayInfo> {
        Vec::new()
    }

    fn next_frame(&mut self, _force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        let keyframe = (self.n + self.phase).is_multiple_of(KEYFRAME_EVERY);
        self.n += 1;
        let mut data = vec![0u8; if keyframe { KEYFRAME_BYTES } else { P_FRAME_BYTES }];
        self.rng.fill_bytes(&mut data);
        Ok(Some(EncodedFrame { data, keyframe, display: 0, width: 1920, height: 1080, capture_us: now_us() }))
    }
}

struct RelayProcess {
    child: Child,
    server: String,
    quic: std::net::SocketAddr,
    fingerprint: String,
    password: String,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProcess {
    fn start(dir: &std::path::Path) -> anyhow::Result<RelayProcess> {
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(crate::procs::sibling_binary("deskline-relay", "deskline-relay")?)
            // Every app and viewer of the load comes from 127.0.0.1: one network, whose default
            // allowance (64 connections) an office fits but a load of hundreds does not.
            .args(["serve", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--demo-admin", "admin", "--connections-per-network", "4096", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the relay (taskset from util-linux)")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let (mut server, mut quic, mut fingerprint, mut password) = (String::new(), String::new(), String::new(), String::new());
        while server.is_empty() || quic.is_empty() {
            let line = lines.next().context("the relay stopped")??;
            if let Some(p) = line.split("one-time password: ").nth(1) {
                password = p.trim().to_owned();
            }
            if line.starts_with("relay certificate SHA-256") {
                fingerprint = line.rsplit(' ').next().unwrap_or_default().to_owned();
            }
            if let Some(q) = line.strip_prefix("QUIC (support apps and viewers): ") {
                quic = q.to_owned();
            }
            if let Some(url) = line.strip_prefix("web console: ") {
                server = url.trim_end_matches('/').to_owned();
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(RelayProcess { child, server, quic: quic.parse()?, fingerprint, password })
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        // `taskset` execs the relay, so the child's pid is the relay's.
        crate::procs::cpu_seconds(self.child.id())
    }
}

/// Latencies and bytes received in the measurement window.
#[derive(Default)]
struct Sink {
    latencies: Vec<f64>,
    bytes: usize,
    measuring: bool,
}

type Shared = Arc<Mutex<Sink>>;

fn record(shared: &Shared, frame: &VideoFrame, bytes: usize) {
    let latency = now_us().saturating_sub(frame.capture_us) as f64 / 1000.0;
    let mut sink = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if sink.measuring {
        sink.latencies.push(latency);
        sink.bytes += bytes;
    }
}

/// A viewer that receives frames without decoding them.
async fn raw_viewer(quic: std::net::SocketAddr, pin: [u8; 32], token: String, session: SessionId, sink: Shared) -> anyhow::Result<()> {
    let connection = deskline_net::quic::connect(quic, "localhost", Some(pin)).await?;
    let hello = Message::Hello(Hello { protocol_version: PROTOCOL_VERSION, role: HelloRole::Technician { token, session } });
    let (_writer, mut reader) = open_control(&connection, &hello).await?;
    match reader.next().await? {
        Some(Message::Welcome(_)) => {}
        other => bail!("viewer not welcomed: {other:?}"),
    }
    tokio::spawn(async move { while let Ok(Some(_)) = reader.next().await {} });
    while let Ok(stream) = connection.accept_uni().await {
        let sink = sink.clone();
        tokio::spawn(async move {
            if let Ok((bytes, frame)) = read_frame(stream).await {
                record(&sink, &frame, bytes.len());
            }
        });
    }
    Ok(())
}

/// The direct baseline: the same frames sender → each receiver over its own QUIC connection.
/// Returns the receiving endpoint, to be closed when the measurement is over.
async fn direct_pairs(sessions: usize, viewers: usize, sink: Shared, stop: Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<quinn::Endpoint> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let der = cert.cert.der().to_vec();
    let fingerprint = deskline_net::tls::parse_fingerprint(&deskline_net_fingerprint(&der))?;
    let config = deskline_net::quic::server_config(der, cert.signing_key.serialize_der())?;
    let server = deskline_net::quic::server_endpoint("127.0.0.1:0".parse()?, config)?;
    let addr = server.local_addr()?;
    let receiving = sink.clone();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let sink = receiving.clone();
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                while let Ok(stream) = connection.accept_uni().await {
                    let sink = sink.clone();
                    tokio::spawn(async move {
                        if let Ok((bytes, frame)) = read_frame(stream).await {
                            record(&sink, &frame, bytes.len());
                        }
                    });
                }
            });
        }
    });
    // Every connection first, then the senders, as with the relay.
    let mut pairs = Vec::new();
    for s in 0..sessions {
        let mut connections = Vec::new();
        for _ in 0..viewers {
            let connection = deskline_net::quic::connect(addr, "localhost", Some(fingerprint)).await;
            connections.push(connection.with_context(|| format!("direct connection {s} of {sessions}"))?);
        }
        pairs.push((s, connections));
    }
    for (s, connections) in pairs {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut source = BlobSource { n: 0, phase: (s as u64 * 7) % KEYFRAME_EVERY, rng: rand::rngs::StdRng::seed_from_u64(s as u64) };
            // Spread over the frame period, as the relay's sessions are by their viewers joining
            // one after another: all senders on the same tick would measure a burst, not a load.
            tokio::time::sleep(Duration::from_micros(33_333 * s as u64 / sessions.max(1) as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_micros(33_333));
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let Ok(Some(f)) = source.next_frame(false) else { return };
                let frame = VideoFrame { seq, capture_us: f.capture_us, keyframe: f.keyframe, display: f.display, width: f.width, height: f.height, codec: VideoCodec::H264, data: f.data };
                seq += 1;
                let Ok(encoded) = deskline_net::framed::encode_frame(frame) else { return };
                for connection in &connections {
                    let connection = connection.clone();
                    let encoded = encoded.clone();
                    tokio::spawn(async move {
                        let _ = send_frame(&connection, &encoded, 0).await;
                    });
                }
            }
        });
    }
    Ok(server)
}

/// Lowercase hex SHA-256 of a certificate, as the relay prints it.
fn deskline_net_fingerprint(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

async fn measure(sink: &Shared, warmup: Duration, seconds: f64) -> (Vec<f64>, usize) {
    tokio::time::sleep(warmup).await;
    sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).measuring = true;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let mut s = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.measuring = false;
    (std::mem::take(&mut s.latencies), s.bytes)
}

/// Runs one load level: `sessions` sessions, `viewers` viewers each (1 to 3), `seconds`
/// measured.
pub async fn run(sessions: usize, viewers: usize, seconds: f64) -> anyhow::Result<LoadResult> {
    let viewers = viewers.clamp(1, deskline_protocol::limits::MAX_TECHNICIANS_PER_SESSION);
    let dir = tempfile::tempdir()?;
    let relay = RelayProcess::start(dir.path())?;
    let pin = deskline_net::tls::parse_fingerprint(&relay.fingerprint)?;
    // The demo admin's printed password is one-time: `sign_in` sets the admin's own first.
    let admin = crate::api::sign_in(&relay.server, &relay.fingerprint, "admin", &relay.password).await?.client;
    // A technician owns at most 10 open sessions: a group of technicians per ten sessions, the
    // first owning them, the others invited (one viewer each).
    let mut groups = Vec::new();
    for g in 0..sessions.div_ceil(10) {
        let mut members = Vec::new();
        for v in 0..viewers {
            let name = format!("load{g}x{v}");
            // One-time (an admin gave it): `sign_in` sets the technician's own at the first sign-in.
            let password = "a long enough password";
            let new = CreateTechnician { username: name.clone(), display_name: String::new(), password: password.into(), role: Role::Technician };
            let created: TechnicianView = admin.post("/technicians", &new).await?;
            let _: ChannelView = admin.post("/channels/1/members", &TechnicianRef { technician_id: created.id }).await?;
            let signed_in = crate::api::sign_in(&relay.server, &relay.fingerprint, &name, password).await?;
            members.push((signed_in.client, signed_in.token, signed_in.id));
        }
        groups.push(members);
    }
    let sink: Shared = Arc::default();
    let mut keep = Vec::new();
    let mut tasks = Vec::new();
    // First every session with its app connected and consent granted (nothing streams without
    // a viewer), then the viewers: set-up never competes with a full load for the one core.
    let mut ready = Vec::new();
    for s in 0..sessions {
        let group = &groups[s / 10];
        let owner = &group[0].0;
        let session = crate::api::pin_session(owner).await?;
        let id = session.id;
        for (_, _, helper) in &group[1..] {
            let _: SessionView = owner.post(&format!("/sessions/{id}/invite"), &TechnicianRef { technician_id: *helper }).await?;
        }
        let code = AppCode::Pin(session.pin.as_deref().context("pin")?.parse()?);
        let config = AgentConfig { relay: relay.quic, server_name: "localhost".into(), fingerprint: Some(pin), code };
        let info = AppInfo { os: "load".into(), host_name: format!("load{s}"), app_version: "0".into(), displays: vec![] };
        let registered = register(&config, info, None).await.with_context(|| format!("registering load app {s} of {sessions}"))?;
        let prompt = Arc::new(ScriptedPrompt { answer: ScriptedAnswer::AllowAll, delay: Duration::ZERO });
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
        keep.push((events_rx, commands));
        let phase = (s as u64 * 7) % KEYFRAME_EVERY;
        let make = move || Ok(BlobSource { n: 0, phase, rng: rand::rngs::StdRng::seed_from_u64(s as u64) });
        tasks.push(tokio::spawn(async move {
            let _ = registered.serve(make, RecordingSink::default(), prompt, deskline_agent::grants::Grants::default(), events, commands_rx).await;
        }));
        crate::api::ask_consent(owner, id).await?;
        crate::api::wait_until(owner, id, 200, Duration::from_millis(10), |s| s.consent.status == "granted").await?;
        ready.push((s, id));
    }
    for (s, id) in ready {
        for (_, token, _) in &groups[s / 10] {
            let viewer = raw_viewer(relay.quic, pin, token.clone(), SessionId(id), sink.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = viewer.await {
                    eprintln!("a load viewer failed: {e:#}");
                }
            }));
        }
    }
    let cpu_before = relay.cpu_seconds()?;
    let generator_before = crate::procs::cpu_seconds(std::process::id())?;
    let started = Instant::now();
    // A technician uses the console meanwhile: the API must keep answering.
    let api_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api_probe = {
        let (client, stop) = (admin.clone(), api_stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                let _: Vec<SessionView> = client.get("/sessions?scope=home").await?;
                times.push(asked.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(times)
        })
    };
    let (relay_latencies, bytes) = measure(&sink, Duration::from_secs(2), seconds).await;
    let elapsed = started.elapsed().as_secs_f64() - 2.0;
    let relay_cpu_s = relay.cpu_seconds()? - cpu_before;
    api_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let api_times = api_probe.await?.context("the API failed under load")?;
    let (relay_rss_mib, relay_peak_rss_mib) = crate::procs::memory_mib(relay.child.id())?;
    let generator_cpu_percent = (crate::procs::cpu_seconds(std::process::id())? - generator_before) / (elapsed + 2.0) * 100.0;
    // Stop every app and viewer of this run (their capture threads end with them) so the
    // direct baseline has the load generator's core to itself.
    for task in &tasks {
        task.abort();
    }
    drop(keep);
    drop(relay);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let direct_sink: Shared = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let direct = direct_pairs(sessions, viewers, direct_sink.clone(), stop.clone()).await?;
    let (direct_latencies, _) = measure(&direct_sink, Duration::from_secs(2), seconds).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Nothing of this level may load the next one.
    direct.close(0u32.into(), b"done");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let relay_ms = summarize(&relay_latencies);
    let direct_ms = summarize(&direct_latencies);
    let gb = bytes as f64 / 1e9;
    Ok(LoadResult {
        sessions,
        viewers,
        seconds: elapsed,
        frames: relay_latencies.len(),
        frames_expected: (sessions as f64 * viewers as f64 * elapsed * 30.0) as usize,
        megabytes: bytes as f64 / 1e6,
        added_p50_ms: relay_ms.zip(direct_ms).map(|(r, d)| r.p50 - d.p50),
        added_p99_ms: relay_ms.zip(direct_ms).map(|(r, d)| r.p99 - d.p99),
        relay_ms,
        direct_ms,
        relay_cpu_s,
        relay_cpu_s_per_gb: (gb > 0.0).then(|| relay_cpu_s / gb),
        generator_cpu_percent,
        api_ms: summarize(&api_times),
        api_calls: api_times.len(),
        relay_rss_mib,
        relay_peak_rss_mib,
        relay_samples_ms: relay_latencies,
        direct_samples_ms: direct_latencies,
    })
}
