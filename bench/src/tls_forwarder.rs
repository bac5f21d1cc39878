//! The relay benchmark's reference (issue 18): the smallest relay a user could build that keeps
//! the traffic encrypted on both legs — TLS 1.3 over TCP (tokio + rustls with the same ring
//! cipher suites as Deskline's QUIC), one sender and its receivers per session, every chunk the
//! sender's TLS stream yields decrypted and re-encrypted for each receiver, no framing, no
//! state, no consent. `deskline-bench relay` runs it as its own process pinned to the relay's
//! core and carries the same frames through it in the same run, so "relay CPU per GB" has a
//! yardstick measured on the same machine a minute apart.
//!
//! Wire: after the TLS handshake a client sends 9 bytes, its role (0 sender, 1 receiver) and
//! the session number (u64, big-endian); then the sender's bytes reach every receiver that
//! joined that session before them.

use anyhow::{Context as _, bail};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

type Receivers = Arc<tokio::sync::Mutex<Vec<WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>>>>;

/// Role byte of a sender.
pub const SENDER: u8 = 0;
/// Role byte of a receiver.
pub const RECEIVER: u8 = 1;

/// Runs the forwarder on 127.0.0.1 until killed. Prints `listening ADDR SHA256-HEX` once ready.
pub fn serve() -> anyhow::Result<()> {
    // The relay's runtime too: tokio's default (one worker per core it may use).
    tokio::runtime::Runtime::new()?.block_on(async {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        let der = cert.cert.der().to_vec();
        let fingerprint = crate::relay_load::fingerprint_hex(&der);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(der)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {} {fingerprint}", listener.local_addr()?);
        let sessions: Arc<Mutex<HashMap<u64, Receivers>>> = Arc::default();
        loop {
            let (tcp, _) = listener.accept().await?;
            let (acceptor, sessions) = (acceptor.clone(), sessions.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(acceptor, tcp, &sessions).await {
                    eprintln!("tls-forwarder: {e:#}");
                }
            });
        }
    })
}

async fn connection(acceptor: tokio_rustls::TlsAcceptor, tcp: TcpStream, sessions: &Mutex<HashMap<u64, Receivers>>) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = acceptor.accept(tcp).await?;
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await?;
    let session = u64::from_be_bytes(head[1..].try_into()?);
    let receivers = sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(session).or_default().clone();
    match head[0] {
        RECEIVER => {
            let (mut read, write) = tokio::io::split(tls);
            receivers.lock().await.push(write);
            // Held open until the receiver leaves.
            let mut sink = [0u8; 64];
            while read.read(&mut sink).await? > 0 {}
        }
        SENDER => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tls.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                for receiver in receivers.lock().await.iter_mut() {
                    receiver.write_all(&buf[..n]).await?;
                }
            }
        }
        other => bail!("unknown role {other}"),
    }
    Ok(())
}

/// A client's TLS connection to the forwarder at `addr`, its role and session sent.
pub async fn connect(
    addr: std::net::SocketAddr,
    pin: [u8; 32],
    role: u8,
    session: u64,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = deskline_net::tls::client_config_tls13(Some(pin));
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.context("TLS to the forwarder")?;
    let mut head = [role; 9];
    head[1..].copy_from_slice(&session.to_be_bytes());
    tls.write_all(&head).await?;
    tls.flush().await?;
    Ok(tls)
}
