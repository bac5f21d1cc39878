//! The relay benchmark's reference (issue 18): the smallest relay a user could build that keeps
//! the traffic encrypted on both legs — TLS 1.3 over TCP (tokio + rustls with the same ring
//! cipher suites as Deskline's QUIC), one sender and its receivers per session, every chunk the
//! sender's TLS stream yields decrypted and re-encrypted for each receiver, no framing, no
//! state, no consent. `deskline-bench relay` runs it as its own process pinned to the relay's
//! core and carries the same frames through it in the same run, so "relay CPU per GB" has a
//! yardstick measured on the same machine a minute apart.
//!
//! Wire: after the TLS handshake a client sends 9 bytes, its role (0 sender, 1 receiver) and
//! the session number (u64, big-endian); a receiver is answered one byte once it is in the
//! session, and from then on gets every byte the session's sender sends.

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
/// The byte a receiver gets once it is in its session: every byte the sender sends after that
/// reaches it.
const JOINED: u8 = 1;

/// Runs the forwarder on 127.0.0.1 until killed. Prints `listening ADDR SHA256-HEX` once ready.
pub fn serve() -> anyhow::Result<()> {
    // The relay's runtime too: tokio's default (one worker per core it may use).
    tokio::runtime::Runtime::new()?.block_on(async {
        let forwarder = Forwarder::bind().await?;
        println!("listening {} {}", forwarder.listener.local_addr()?, forwarder.fingerprint);
        forwarder.run().await
    })
}

/// A bound forwarder: its listener, TLS acceptor and certificate fingerprint.
pub struct Forwarder {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    /// Lowercase hex SHA-256 of its self-signed certificate.
    pub fingerprint: String,
}

impl Forwarder {
    /// Binds 127.0.0.1 on a free port with a fresh self-signed certificate.
    pub async fn bind() -> anyhow::Result<Forwarder> {
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
        Ok(Forwarder { listener: TcpListener::bind("127.0.0.1:0").await?, acceptor, fingerprint })
    }

    /// Its address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and forwards until the listener fails.
    pub async fn run(self) -> anyhow::Result<()> {
        let sessions: Arc<Mutex<HashMap<u64, Receivers>>> = Arc::default();
        loop {
            let (tcp, _) = self.listener.accept().await?;
            let (acceptor, sessions) = (self.acceptor.clone(), sessions.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(acceptor, tcp, &sessions).await {
                    eprintln!("tls-forwarder: {e:#}");
                }
            });
        }
    }
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
            let (mut read, mut write) = tokio::io::split(tls);
            // Joined: told so under the lock, before any of the sender's bytes.
            let mut joined = receivers.lock().await;
            write.write_all(&[JOINED]).await?;
            write.flush().await?;
            joined.push(write);
            drop(joined);
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

/// A client's TLS connection to the forwarder at `addr`, its role and session sent (a
/// receiver's once it has joined).
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
    if role == RECEIVER {
        let mut joined = [0u8];
        tls.read_exact(&mut joined).await.context("joining a session of the forwarder")?;
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_senders_bytes_reach_every_receiver_of_its_session_and_no_other() {
        let forwarder = Forwarder::bind().await.unwrap();
        let addr = forwarder.local_addr().unwrap();
        let pin = deskline_net::tls::parse_fingerprint(&forwarder.fingerprint).unwrap();
        tokio::spawn(forwarder.run());
        let mut first = connect(addr, pin, RECEIVER, 7).await.unwrap();
        let mut second = connect(addr, pin, RECEIVER, 7).await.unwrap();
        let mut elsewhere = connect(addr, pin, RECEIVER, 8).await.unwrap();
        let mut sender = connect(addr, pin, SENDER, 7).await.unwrap();
        let message: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        sender.write_all(&message).await.unwrap();
        sender.flush().await.unwrap();
        for receiver in [&mut first, &mut second] {
            let mut got = vec![0u8; message.len()];
            receiver.read_exact(&mut got).await.unwrap();
            assert!(got == message, "a receiver got other bytes");
        }
        let mut nothing = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_millis(200), elsewhere.read(&mut nothing)).await;
        assert!(read.is_err(), "another session's receiver got bytes: {read:?}");
    }
}
