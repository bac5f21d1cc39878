//! The QUIC endpoint (ALPN `deskline/1`): support apps register with a link token or PIN,
//! technicians' viewers join their sessions, frames and input pass through the consent gate.
//!
//! Media choice: one unidirectional stream per video frame, newest frames at the highest
//! priority. A frame is larger than a datagram (about 1.2 KB), so datagrams would need our own
//! fragmentation and loss handling; streams give both, and since each frame has its own stream,
//! a lost packet of an old frame never holds up a newer one (no head-of-line blocking). A viewer
//! that falls behind has frames dropped at the relay and resumes at the next keyframe.

mod app;
mod browser;
mod files;
mod gate;
#[cfg(test)]
mod chokepoint_tests;
mod guard;
mod hub;
mod viewer;

pub use gate::{ClipboardPass, ConsentGate, FilePass, FramePass, InputPass};
pub use guard::CodeGuard;

use crate::desk::Desk;
use crate::limits::{HELLO_TIMEOUT, MAX_QUIC_CONNECTIONS, SHUTDOWN_QUIC_DRAIN};
use crate::network::ConnectionLimiter;
use deskline_net::framed::{MessageReader, MessageWriter, accept_control};
use deskline_protocol::session::Actor;
use deskline_protocol::{ChatLine, Hello, HelloRole, Message, PROTOCOL_VERSION, Reject, RejectReason, SessionId};
use hub::Hubs;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The relay's QUIC side.
pub struct Transport {
    hubs: Arc<Hubs>,
    guard: CodeGuard,
    next_conn: AtomicU64,
    /// Where browsers' WebRTC connections are bound and announced.
    webrtc: WebRtcAddresses,
}

/// Where browsers' WebRTC connections are bound (an ephemeral UDP port each) and the address
/// announced to browsers besides the bound one.
#[derive(Debug, Clone, Copy)]
pub struct WebRtcAddresses {
    /// The address to bind (the QUIC address: an unspecified one means every interface but
    /// loopback).
    pub bind: IpAddr,
    /// The public address of a relay behind one-to-one NAT (a cloud VM's public IP), announced
    /// as a server-reflexive candidate next to the bound address.
    pub public: Option<IpAddr>,
}

impl Transport {
    /// The transport for this desk (which names the organisation to end users); apps stream at
    /// `max_fps` at most, browsers connect over WebRTC at `webrtc`.
    pub fn new(desk: Desk, max_fps: u16, webrtc: WebRtcAddresses) -> Arc<Transport> {
        let guard = CodeGuard::new(crate::failures::FailureLog::for_db(desk.db()));
        let hubs = Hubs::new(desk, max_fps);
        hubs.follow();
        Arc::new(Transport { hubs, guard, next_conn: AtomicU64::new(1), webrtc })
    }

    /// Stops accepting connections, says goodbye to every app and viewer, gives the messages
    /// [`hub::BYE_GRACE`] to leave, then closes the QUIC endpoint and waits (at most
    /// [`SHUTDOWN_QUIC_DRAIN`]) for its connections to be closed.
    pub async fn shut_down(&self, endpoint: &quinn::Endpoint) {
        // No new connections meanwhile: an app or viewer told goodbye that came straight back
        // would be cut off again by the close below (and count a second reconnect).
        endpoint.set_server_config(None);
        self.hubs.say_goodbye();
        tokio::time::sleep(hub::BYE_GRACE).await;
        endpoint.close(0u32.into(), b"relay shutting down");
        if tokio::time::timeout(SHUTDOWN_QUIC_DRAIN, endpoint.wait_idle()).await.is_err() {
            tracing::warn!("QUIC connections still open after the shutdown bound");
        }
    }

    /// A chat line from `from` (a technician, or the app as `Actor::App`) on session `id`:
    /// recorded by the desk, which checks and limits it, then sent to the session's app and
    /// native viewers, the sender's included (what everyone shows is what was recorded). Web
    /// consoles get it from their live events.
    ///
    /// # Errors
    /// The desk's refusal: bad text, too many lines, not on the session, app not connected.
    pub async fn chat(&self, from: Actor, id: SessionId, text: String) -> Result<ChatLine, crate::error::Error> {
        let line = self.hubs.desk.chat(from, id, text).await?;
        if let Some(hub) = self.hubs.existing(id) {
            hub::send_chat(&hub.lock(), &line);
        }
        Ok(line)
    }

    /// What is connected now, for metrics: support apps, and viewers by kind.
    #[must_use]
    pub fn connected(&self) -> (i64, [(&'static str, i64); 2]) {
        self.hubs.connected()
    }

    /// Accepts connections until the endpoint closes, at most `per_network` at a time from one
    /// source network.
    pub async fn serve(self: Arc<Self>, endpoint: quinn::Endpoint, per_network: usize) {
        let limiter = ConnectionLimiter::new(MAX_QUIC_CONNECTIONS, per_network);
        while let Some(incoming) = endpoint.accept().await {
            let remote = incoming.remote_address();
            let slot = match limiter.admit(remote.ip()) {
                Ok(slot) => slot,
                Err(refused) => {
                    tracing::warn!(%remote, ?refused, "QUIC connection refused: connection limit");
                    self.hubs.desk.metrics().limit_tripped("quic_connections");
                    incoming.refuse();
                    continue;
                }
            };
            let transport = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                // From the first packet to the hello, one deadline: a client that completes the
                // handshake and then stays silent (the relay's keep-alives would keep it up
                // forever) is closed when it passes.
                let greeted = tokio::time::timeout(HELLO_TIMEOUT, greet(incoming)).await;
                match greeted {
                    Ok(Some((connection, writer, reader, hello))) => transport.handle(connection, writer, reader, hello).await,
                    Ok(None) => {}
                    Err(_) => tracing::info!(%remote, "QUIC connection closed: no hello in time"),
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, connection: quinn::Connection, mut writer: MessageWriter, reader: MessageReader, hello: Hello) {
        if hello.protocol_version != PROTOCOL_VERSION {
            let reason = RejectReason::UnsupportedVersion { supported: PROTOCOL_VERSION };
            reject(&connection, &mut writer, reason, "this relay speaks another protocol version").await;
            return;
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        match hello.role {
            HelloRole::App { code, info, resume } => {
                app::run(&self, conn_id, connection, writer, reader, code, info, resume).await;
            }
            HelloRole::Technician { token, session } => {
                viewer::run(&self, conn_id, connection, writer, reader, token, session).await;
            }
        }
    }
}

/// Completes the handshake and reads the hello. Dropping this future (the deadline passed)
/// drops the connection, which closes it.
async fn greet(incoming: quinn::Incoming) -> Option<(quinn::Connection, MessageWriter, MessageReader, Hello)> {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC handshake failed");
            return None;
        }
    };
    let (writer, mut reader) = match accept_control(&connection).await {
        Ok(streams) => streams,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "no control stream");
            return None;
        }
    };
    match reader.next().await {
        Ok(Some(Message::Hello(hello))) => Some((connection, writer, reader, hello)),
        Err(e) => {
            tracing::info!(%remote, error = %e, "bad first message");
            connection.close(1u32.into(), b"protocol error");
            None
        }
        Ok(_) => {
            connection.close(1u32.into(), b"expected hello");
            None
        }
    }
}

/// Sends a rejection and closes the connection once it is delivered.
async fn reject(connection: &quinn::Connection, writer: &mut MessageWriter, reason: RejectReason, message: &str) {
    let _ = writer.send(&Message::Reject(Reject { reason, message: message.to_owned() })).await;
    let _ = writer.finish();
    hub::close_soon(connection.clone());
}

/// Drains a peer's outgoing queue into its control stream until either ends.
fn spawn_writer(mut writer: MessageWriter, mut queue: tokio::sync::mpsc::Receiver<Message>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            if writer.send(&message).await.is_err() {
                return;
            }
        }
        let _ = writer.finish();
    })
}

/// The next control message, `None` when the stream ends or breaks.
async fn next_message(reader: &mut MessageReader) -> Option<Result<Message, deskline_net::NetError>> {
    reader.next().await.transpose()
}
