//! A plain UDP socket for quinn, for systems where quinn-udp's optimised socket cannot be set
//! up: no ECN, no segmentation offload, one datagram per call, over tokio's `UdpSocket`.
//!
//! Why: quinn-udp 0.5 (what quinn 0.11 uses) treats a failure to enable `IP_RECVECN` as fatal,
//! and Wine (where the Windows support app is tested) does not implement that option, so
//! `Endpoint::client` fails there with OS error 10045. quinn-udp 0.6 tolerates it, but quinn
//! 0.11 cannot use 0.6. quinn accepts any socket through [`quinn::AsyncUdpSocket`]; this is
//! the smallest correct one. Real Windows and Linux keep quinn-udp's socket.

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::ReadBuf;

/// A tokio UDP socket as quinn's socket.
#[derive(Debug)]
pub struct PlainUdp {
    io: tokio::net::UdpSocket,
}

impl PlainUdp {
    /// Binds a socket to `addr`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(addr: SocketAddr) -> io::Result<PlainUdp> {
        let socket = crate::quic::bind_udp(addr)?;
        socket.set_nonblocking(true)?;
        Ok(PlainUdp { io: tokio::net::UdpSocket::from_std(socket)? })
    }
}

/// Waits until the socket can send.
struct Writable(Arc<PlainUdp>);

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writable")
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.0.io.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for PlainUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self))
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // One datagram per transmit: `max_transmit_segments` is 1, so quinn never batches.
        self.io.try_send_to(transmit.contents, transmit.destination).map(|_| ())
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            let mut read = ReadBuf::new(buf);
            match ready!(self.io.poll_recv_from(cx, &mut read)) {
                Ok(addr) => {
                    let len = read.filled().len();
                    *slot = RecvMeta { addr, len, stride: len, ecn: None, dst_ip: None };
                    return Poll::Ready(Ok(1));
                }
                // Windows reports an ICMP "port unreachable" for an earlier datagram as a
                // reset on the next receive: not this socket's failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}
