//! The plain UDP socket (the support app's fallback where quinn-udp cannot set up its socket,
//! as under Wine) carries a real QUIC connection with a pinned certificate, both ways.
#![allow(clippy::unwrap_used)]

use deskline_net::quic;
use sha2::Digest as _;

#[tokio::test]
async fn a_quic_connection_over_the_plain_socket_carries_streams_both_ways() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = cert.cert.der().to_vec();
    let pin: [u8; 32] = sha2::Sha256::digest(&der).into();
    let config = quic::server_config(der, cert.signing_key.serialize_der()).unwrap();
    let server = quic::server_endpoint("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let connection = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = connection.accept_bi().await.unwrap();
        let got = recv.read_to_end(1 << 20).await.unwrap();
        send.write_all(&got.iter().rev().copied().collect::<Vec<u8>>()).await.unwrap();
        send.finish().unwrap();
        connection.closed().await;
    });

    let mut client = quic::plain_client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quic::client_config(Some(pin)).unwrap());
    let connection = client.connect(addr, "localhost").unwrap().await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    // Larger than a datagram many times over: flow control and loss recovery both run.
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    send.write_all(&message).await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1 << 20).await.unwrap();
    assert_eq!(answer, message.iter().rev().copied().collect::<Vec<u8>>());
    connection.close(0u32.into(), b"done");
    serving.await.unwrap();
}

#[tokio::test]
async fn a_wrong_certificate_is_refused_over_the_plain_socket_too() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let config = quic::server_config(cert.cert.der().to_vec(), cert.signing_key.serialize_der()).unwrap();
    let server = quic::server_endpoint("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        if let Some(incoming) = server.accept().await {
            let _ = incoming.await;
        }
    });
    let mut client = quic::plain_client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quic::client_config(Some([7; 32])).unwrap());
    assert!(client.connect(addr, "localhost").unwrap().await.is_err(), "a pin that does not match must fail");
}
