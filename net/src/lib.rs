//! # deskline-net
//!
//! The QUIC plumbing the relay, the support app and the technician's viewer share: endpoint
//! and TLS configuration (TLS 1.3 only, ALPN `deskline/1`, no 0-RTT, certificate pinning by
//! SHA-256), and message streams that carry `deskline-protocol` messages over quinn streams.
//!
//! Why a crate of its own: the app and the viewer must connect exactly the same way, and
//! neither should depend on the other (or on the relay) to do it.
//!
//! Not here: what the messages mean. The relay, the agent and the console decide that.

pub mod files;
pub mod framed;
pub mod quic;
pub mod relay_file;
pub mod tls;
pub mod udp;

/// Why a QUIC operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Setting up TLS or QUIC failed.
    #[error("configuration: {0}")]
    Config(String),
    /// Connecting failed (unreachable, refused, wrong certificate, ...).
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection broke or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing to a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading from a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// A whole-stream read failed (for example: longer than allowed).
    #[error("read: {0}")]
    ReadToEnd(#[from] quinn::ReadToEndError),
    /// The stream was already finished.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// The peer sent bytes that do not decode.
    #[error("bad message from the peer: {0}")]
    Decode(#[from] deskline_protocol::DecodeError),
    /// A message could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] deskline_protocol::EncodeError),
    /// The peer sent a message that does not belong here.
    #[error("unexpected message from the peer: {0}")]
    Unexpected(String),
    /// Local I/O (binding a socket).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
