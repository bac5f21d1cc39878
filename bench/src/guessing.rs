//! How many PINs an attacker gets to try: a real relay (in this process, real QUIC with TLS
//! 1.3) and guessers that each open a QUIC connection from their own loopback source address
//! and present a wrong PIN, as fast as the relay lets them — from one address, then from a /16
//! (256 /24 networks, 127.1.0.0–127.1.255.255). Meanwhile an honest end user joins with the
//! right PIN from another network, and the time it takes is reported.
//!
//! A guess "counts" when the relay evaluated it (answered "no session has this code"); the
//! rest were refused before evaluation (rate limited) or not accepted as connections (the
//! per-network connection limit).

use anyhow::Context as _;
use deskline_protocol::{AppCode, AppInfo, Hello, HelloRole, Message, PROTOCOL_VERSION, RejectReason};
use deskline_relay::server::LocalRelay;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One attack's figures.
#[derive(Debug, Clone, Serialize)]
pub struct GuessingResult {
    /// Where the guesses came from.
    pub source: String,
    /// Source addresses used.
    pub addresses: usize,
    /// Seconds the attack ran.
    pub seconds: f64,
    /// Wrong PINs the relay evaluated.
    pub evaluated: u64,
    /// Attempts refused as rate limited (not evaluated).
    pub rate_limited: u64,
    /// Connections not accepted or failed (the per-network connection limit).
    pub not_connected: u64,
    /// Evaluated guesses per minute.
    pub guesses_per_minute: f64,
    /// How long the honest end user's join took during the attack (ms), and whether it worked.
    pub honest_join_ms: Option<f64>,
}

#[derive(Default)]
struct Counts {
    evaluated: AtomicU64,
    rate_limited: AtomicU64,
    not_connected: AtomicU64,
}

fn info() -> AppInfo {
    AppInfo { os: "bench".into(), host_name: "guesser".into(), app_version: "0".into(), displays: vec![] }
}

/// One connection from `endpoint` presenting `code`: the relay's first answer.
async fn present(endpoint: &quinn::Endpoint, relay: SocketAddr, code: AppCode) -> anyhow::Result<Message> {
    let connection = endpoint.connect(relay, "localhost")?.await?;
    let hello = Message::Hello(Hello { protocol_version: PROTOCOL_VERSION, role: HelloRole::App { code, info: info(), resume: None } });
    let (_writer, mut reader) = deskline_net::framed::open_control(&connection, &hello).await?;
    let answer = tokio::time::timeout(Duration::from_secs(15), reader.next()).await?.context("no answer")?.context("closed")?;
    connection.close(0u32.into(), b"done");
    Ok(answer)
}

/// Guesses from `addresses` with `per_address` connections at a time each until `until`.
async fn attack(relay: SocketAddr, fingerprint: [u8; 32], addresses: Vec<IpAddr>, per_address: usize, wrong: AppCode, until: Instant) -> anyhow::Result<Arc<Counts>> {
    let counts = Arc::new(Counts::default());
    let mut workers = Vec::new();
    for address in addresses {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::new(address, 0))?;
        endpoint.set_default_client_config(deskline_net::quic::client_config(Some(fingerprint))?);
        for _ in 0..per_address {
            let (endpoint, counts, wrong) = (endpoint.clone(), counts.clone(), wrong.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let remaining = until.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, present(&endpoint, relay, wrong.clone())).await {
                        Ok(Ok(Message::Reject(r))) if r.reason == RejectReason::UnknownCode => counts.evaluated.fetch_add(1, Ordering::Relaxed),
                        Ok(Ok(Message::Reject(r))) if matches!(r.reason, RejectReason::RateLimited { .. }) => {
                            counts.rate_limited.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok(_) => counts.not_connected.fetch_add(1, Ordering::Relaxed),
                        Err(_) => break, // the time is up mid-attempt: not counted
                    };
                }
            }));
        }
    }
    for worker in workers {
        worker.await?;
    }
    Ok(counts)
}

/// Runs both attacks for `seconds` each, each on a fresh relay.
pub async fn run(seconds: f64) -> anyhow::Result<Vec<GuessingResult>> {
    let one: Vec<IpAddr> = vec![IpAddr::from([127, 0, 9, 9])];
    let slash16: Vec<IpAddr> = (0..=255u8).map(|n| IpAddr::from([127, 1, n, 1])).collect();
    let mut results = Vec::new();
    for (source, addresses, per_address) in [("one address", one, 64), ("a /16 (256 networks)", slash16, 4)] {
        let dir = tempfile::tempdir()?;
        let relay = LocalRelay::start(dir.path().join("relay"), "Bench")?;
        let crate::api::SignedIn { client, .. } = crate::api::sign_in(&relay.base_url, &relay.fingerprint, "admin", &relay.admin_password).await?;
        let session = crate::api::pin_session(&client).await?;
        let right: deskline_protocol::Pin = session.pin.as_deref().context("a PIN")?.parse()?;
        let wrong: deskline_protocol::Pin = if right.to_string() == "000000" { "000001" } else { "000000" }.parse()?;
        let fingerprint = deskline_net::tls::parse_fingerprint(&relay.fingerprint)?;
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(seconds);
        let count = addresses.len();
        let attack = tokio::spawn(attack(relay.quic, fingerprint, addresses, per_address, AppCode::Pin(wrong), until));
        // The honest end user joins halfway through, from a network of their own.
        tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
        let mut honest = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        honest.set_default_client_config(deskline_net::quic::client_config(Some(fingerprint))?);
        let join_started = Instant::now();
        let honest_join_ms = match present(&honest, relay.quic, AppCode::Pin(right)).await? {
            Message::Welcome(_) => Some(join_started.elapsed().as_secs_f64() * 1000.0),
            _ => None,
        };
        let counts = attack.await??;
        let elapsed = started.elapsed().as_secs_f64();
        let evaluated = counts.evaluated.load(Ordering::Relaxed);
        results.push(GuessingResult {
            source: source.into(),
            addresses: count,
            seconds: elapsed,
            evaluated,
            rate_limited: counts.rate_limited.load(Ordering::Relaxed),
            not_connected: counts.not_connected.load(Ordering::Relaxed),
            guesses_per_minute: evaluated as f64 * 60.0 / elapsed,
            honest_join_ms,
        });
    }
    Ok(results)
}

/// The results as a markdown table.
#[must_use]
pub fn table(results: &[GuessingResult]) -> String {
    let mut out = String::from(
        "| guesses from | addresses | seconds | wrong PINs evaluated | refused (rate limited) | connections refused | guesses per minute | honest join during the attack |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let honest = r.honest_join_ms.map_or_else(|| "REFUSED".to_owned(), |ms| format!("{ms:.0} ms"));
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.1} | {} |\n",
            r.source, r.addresses, r.seconds, r.evaluated, r.rate_limited, r.not_connected, r.guesses_per_minute, honest
        ));
    }
    out
}
