//! QUIC endpoints and their configuration.

use crate::{NetError, tls};
use deskline_protocol::ALPN;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A peer silent for this long is gone: short enough that a pulled cable frees the session
/// quickly for a reconnect, long enough to ride out a Wi-Fi hiccup. (8 s with a 2 s keep-alive
/// was tried: a dead relay node noticed in 8–10 s instead of 15–19, but then the app resumes
/// on another node before the others declare the dead one dead (10 s), and in one cold test
/// run the viewer of the three-node failover test never got its frames back: see issue 16's
/// note. Kept at 15 s until that ordering is tested.)
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Keep-alive interval, well under [`IDLE_TIMEOUT`] so idle but healthy connections stay up.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(4);

/// Unidirectional streams a peer may have open at once: one per video frame in flight. At
/// 60 fps this is over four seconds of frames, far beyond any useful backlog.
pub const MAX_CONCURRENT_UNI_STREAMS: u32 = 256;

/// Bidirectional streams a peer may open at once: the control stream and up to three files on
/// their way (each has one); a fourth file waits for a stream to close.
pub const MAX_CONCURRENT_BIDI_STREAMS: u32 = 4;

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(MAX_CONCURRENT_UNI_STREAMS.into());
    t.max_concurrent_bidi_streams(MAX_CONCURRENT_BIDI_STREAMS.into());
    t.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    // The timeout fits in a VarInt by construction (15 s).
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// The relay's server configuration: TLS 1.3 only, ALPN `deskline/1`, no 0-RTT (input must
/// never be replayable).
pub fn server_config(cert_der: Vec<u8>, key_der: Vec<u8>) -> Result<quinn::ServerConfig, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rustls::pki_types::CertificateDer::from(cert_der);
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into());
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| NetError::Config(e.to_string()))?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    crypto.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).map_err(|e| NetError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// A client configuration trusting exactly the certificate with this SHA-256 (or the web PKI
/// with `None`).
pub fn client_config(pin: Option<[u8; 32]>) -> Result<quinn::ClientConfig, NetError> {
    let mut crypto = tls::client_config_tls13(pin);
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    crypto.enable_early_data = false;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| NetError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// Receive and send buffer asked for every QUIC socket. A keyframe is a burst of about a
/// hundred full packets (120 KiB and up) to each viewer, and the relay's one socket takes every
/// app's; the system default (208 KiB, about 90 full packets by the kernel's accounting)
/// overflowed under load — measured in issue 18: at 10 sessions with 3 viewers, 236 datagrams
/// dropped in 10 s and the frames behind them (keyframes: the p99) waited 17 ms for their
/// retransmission instead of 1.5 ms. The kernel grants at most twice `net.core.rmem_max` /
/// `wmem_max`; the relay's Debian package raises those.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER_BYTES`] buffers (as large as the system
/// allows).
///
/// # Errors
/// The address cannot be bound.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // A smaller buffer than asked is not an error: the system's limit decides.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A server endpoint on `addr`. A receive buffer smaller than asked is logged with the fix:
/// the relay's one socket takes every app's keyframes.
pub fn server_endpoint(addr: SocketAddr, config: quinn::ServerConfig) -> Result<quinn::Endpoint, NetError> {
    let socket = bind_udp(addr)?;
    if let Ok(granted) = socket2::SockRef::from(&socket).recv_buffer_size()
        && granted < SOCKET_BUFFER_BYTES
    {
        tracing::warn!(
            granted,
            asked = SOCKET_BUFFER_BYTES,
            "the QUIC socket's receive buffer is smaller than asked: keyframe bursts may be dropped under load; raise net.core.rmem_max \
             and wmem_max to 4194304 on the host (the Debian package does, in /usr/lib/sysctl.d/60-deskline-relay.conf)"
        );
    }
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(config), socket, Arc::new(quinn::TokioRuntime))?)
}

/// A client endpoint on `bind`: quinn's own socket (ECN, segmentation offload), or a plain
/// one ([`crate::udp::PlainUdp`]) where the system refuses quinn-udp's socket options (Wine).
///
/// # Errors
/// The address cannot be bound.
pub fn client_endpoint(bind: SocketAddr) -> Result<quinn::Endpoint, NetError> {
    match quinn::Endpoint::new(quinn::EndpointConfig::default(), None, bind_udp(bind)?, Arc::new(quinn::TokioRuntime)) {
        Ok(endpoint) => Ok(endpoint),
        Err(_) => plain_client_endpoint(bind),
    }
}

/// A client endpoint on a plain UDP socket ([`crate::udp::PlainUdp`]).
///
/// # Errors
/// The address cannot be bound.
pub fn plain_client_endpoint(bind: SocketAddr) -> Result<quinn::Endpoint, NetError> {
    let socket = Arc::new(crate::udp::PlainUdp::bind(bind)?);
    Ok(quinn::Endpoint::new_with_abstract_socket(quinn::EndpointConfig::default(), None, socket, Arc::new(quinn::TokioRuntime))?)
}

/// Connects to the relay at `addr`, pinning its certificate's SHA-256. The server name only
/// matters for the web PKI; a pinned certificate is accepted whatever names it carries.
pub async fn connect(addr: SocketAddr, server_name: &str, pin: Option<[u8; 32]>) -> Result<quinn::Connection, NetError> {
    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().map_err(|_| NetError::Config("bind address".into()))?;
    let mut endpoint = client_endpoint(bind)?;
    endpoint.set_default_client_config(client_config(pin)?);
    let connection = endpoint.connect(addr, server_name)?.await?;
    Ok(connection)
}

/// The host of a `host:port` endpoint (`[v6]:port` too), as TLS names the server.
#[must_use]
pub fn server_name(endpoint: &str) -> String {
    endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h).trim_matches(['[', ']']).to_owned()
}
