//! Browsers' viewers over WebRTC: the relay is the browser's peer (the `webrtc` crate).
//!
//! Signalling is one authenticated HTTP request (`POST /api/v1/sessions/{id}/webrtc`): the
//! browser's offer, ICE candidates gathered, in; the relay's answer, candidates gathered, out
//! (no trickling: host candidates are all there is to gather, so it costs nothing). The video
//! is an H.264 track fed with the app's access units as they are — never decoded or re-encoded
//! — with RTP timestamps from the frames' capture times. The browser opens a data channel on
//! which both sides exchange the relay protocol's messages as JSON: from the relay, what a
//! native viewer gets on its control stream (welcome, who holds control, the displays, bye);
//! from the browser, what a native viewer may send (input, control hand-over, display choice,
//! keyframe requests). They go through the very functions QUIC viewers use (`viewer::admit`,
//! `viewer::handle_message`), so the consent gate is the same single chokepoint. A second data
//! channel, `files`, carries files' bytes both ways (`files.rs`).

use super::{Transport, WebRtcAddresses};
use super::hub::{BYE_GRACE, BrowserFiles, ViewerCarrier, request_keyframe};
use super::viewer::{Admitted, VIEWER_QUEUE, admit, leave, may_view, on_message};
use crate::error::Error;
use crate::limits::BROWSER_CONNECT_TIMEOUT;
use bytes::Bytes;
use deskline_protocol::limits::{MAX_CONTROL_MESSAGE_BYTES, MAX_VIDEO_FRAME_BYTES};
use deskline_protocol::{Message, RejectReason, SessionId, TechnicianId, codec};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::playout_delay_extension::PlayoutDelayExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

/// How long ICE gathering may take before the answer is sent anyway (host candidates only:
/// normally immediate).
const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);

/// The RTP header extension that tells a browser how long it may hold frames before showing
/// them.
const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

/// What the relay queues on a page's data channel before `send` waits: the pace of a file sent
/// to the page (about a second of it on a slow link; control messages are few and small).
const DATA_CHANNEL_SEND_BUFFER: usize = 1024 * 1024;

/// The label of the data channel a page opens for files (the first other one is control).
const FILES_CHANNEL: &str = "files";

/// Files a page may be sending at once (more are refused by the offer's limit anyway).
const UPLOAD_QUEUE: usize = 16;

/// A frame's RTP duration when the capture times give none (the first frame, a clock jump).
const DEFAULT_FRAME_DURATION: Duration = Duration::from_millis(33);

/// What browsers and the relay agree on: H.264 Constrained Baseline (what the app's openh264
/// produces), packetization mode 1.
fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Passes the peer connection's events to the viewer's task (the callbacks run on the
/// connection's driver, so they only hand things over).
struct Events {
    gathered: mpsc::Sender<()>,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    state: watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.channels.send(channel);
    }
}

/// A negotiated peer connection, before it is connected.
struct Peer {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    channels: mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
    state: watch::Receiver<RTCPeerConnectionState>,
}

fn webrtc_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("WebRTC: {e}"))
}

/// Answers `offer` with a peer connection at `addresses` (an ephemeral UDP port per browser).
async fn negotiate(addresses: WebRtcAddresses, offer: RTCSessionDescription) -> Result<(String, Peer), Error> {
    let mut media = MediaEngine::default();
    media
        .register_codec(RTCRtpCodecParameters { rtp_codec: h264(), payload_type: 102 }, RtpCodecKind::Video)
        .map_err(webrtc_error)?;
    // Playout delay 0: the browser shows each picture as soon as it is decoded instead of
    // smoothing playback (remote control wants the newest screen; Chromium honours it).
    media
        .register_header_extension(RTCRtpHeaderExtensionCapability { uri: PLAYOUT_DELAY_URI.to_owned() }, RtpCodecKind::Video, None)
        .map_err(webrtc_error)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(webrtc_error)?;
    // No multicast DNS: the relay has a real address, and browsers on other machines reach it
    // through its candidates (their own obfuscated `.local` ones are not needed for that).
    let settings = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
    let (gathered, mut gathering) = mpsc::channel(1);
    let (channels, channel_rx) = mpsc::unbounded_channel();
    let (state, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Events { gathered, channels, state }))
        .with_udp_addrs(vec![SocketAddr::new(addresses.bind, 0)])
        .with_data_channel_send_buffer_limit(DATA_CHANNEL_SEND_BUFFER)
        .build()
        .await
        .map_err(webrtc_error)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let negotiated = async {
        let ssrc: u32 = rand::random::<u32>() | 1;
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: h264(),
            ..Default::default()
        };
        let stream = MediaStreamTrack::new("screen".into(), "screen".into(), "screen".into(), RtpCodecKind::Video, vec![coding]);
        let track = Arc::new(TrackLocalStaticSample::new(Instant::now(), stream)?);
        // The offer first: the track then joins the browser's video transceiver and is bound
        // with the header extension ids the browser chose.
        pc.set_remote_description(offer).await?;
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        let _ = tokio::time::timeout(GATHERING_TIMEOUT, gathering.recv()).await;
        let sdp = pc.local_description().await.map(|d| d.sdp);
        // Browsers may pick another payload type than the one registered.
        let payload_type = sender.get_parameters().await?.rtp_parameters.codecs.first().map(|c| c.payload_type);
        Ok::<_, webrtc::error::Error>((sdp, track, ssrc, payload_type))
    }
    .await;
    match negotiated {
        Ok((Some(sdp), track, ssrc, Some(payload_type))) => {
            let sdp = match addresses.public {
                Some(public) => announce_public(&sdp, public),
                None => sdp,
            };
            Ok((sdp, Peer { pc, track, ssrc, payload_type, channels: channel_rx, state: state_rx }))
        }
        Ok((_, _, _, None)) => {
            let _ = pc.close().await;
            Err(Error::bad("invalid_sdp", "the offer has no H.264 video the relay can send (receive-only video, packetization mode 1)"))
        }
        Ok((None, ..)) => {
            let _ = pc.close().await;
            Err(webrtc_error("no local description"))
        }
        Err(e) => {
            // Dropping a peer connection does not stop its driver: close it.
            let _ = pc.close().await;
            Err(Error::bad("invalid_sdp", format!("the offer cannot be answered: {e}")))
        }
    }
}

/// Adds, after each host candidate of `sdp`, a server-reflexive candidate with the same port
/// at `public`: the address a relay behind one-to-one NAT (a cloud VM) is reached at. The
/// relay's ICE agent needs no knowledge of it — browsers' checks arrive on the bound socket.
/// (webrtc-rs 0.21 has a setting for this, `with_nat_1to1_ips`, that nothing reads yet.)
fn announce_public(sdp: &str, public: std::net::IpAddr) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        // a=candidate:FOUNDATION COMPONENT udp PRIORITY ADDRESS PORT typ host ...
        let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") else { continue };
        let fields: Vec<&str> = candidate.split(' ').collect();
        let [foundation, component, protocol, _priority, address, port, "typ", "host", ..] = fields[..] else { continue };
        if !protocol.eq_ignore_ascii_case("udp") {
            continue;
        }
        let component_id: u32 = component.parse().unwrap_or(1);
        // RFC 8445 priority with the server-reflexive type preference (100).
        let priority = (100u32 << 24) | (65_535 << 8) | (256 - component_id.min(256));
        let newline = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
        out.push_str(&format!(
            "a=candidate:{foundation}1 {component} udp {priority} {public} {port} typ srflx raddr {address} rport {port}{newline}"
        ));
    }
    out
}

impl Transport {
    /// A browser's viewer: answers its WebRTC `offer` for session `id` and serves it until it
    /// leaves, the session ends, or the technician is no longer on it.
    ///
    /// # Errors
    /// A malformed offer (400), a technician not on the session or a session not live (403),
    /// too many viewers (409).
    pub async fn browser_offer(self: &Arc<Self>, technician: TechnicianId, id: SessionId, offer: String) -> Result<String, Error> {
        let refused = |(reason, message): (RejectReason, &str)| match reason {
            RejectReason::TooManyViewers => Error::conflict("too_many_viewers", message),
            _ => Error::Forbidden(message.to_owned()),
        };
        // Checked before any WebRTC work, and again on admission (the session may change).
        may_view(self, technician, id).await.map_err(refused)?;
        let offer = RTCSessionDescription::offer(offer).map_err(|e| Error::bad("invalid_sdp", format!("sdp: {e}")))?;
        let (answer, peer) = negotiate(self.webrtc, offer).await?;
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let files = BrowserFiles::default();
        match admit(self, conn_id, technician, id, ViewerCarrier::Browser(files.clone())).await {
            Ok(admitted) => {
                let transport = self.clone();
                let viewer = BrowserViewer { conn_id, technician, id, files };
                tokio::spawn(async move { serve(&transport, viewer, peer, admitted).await });
                Ok(answer)
            }
            Err(refusal) => {
                let _ = peer.pc.close().await;
                Err(refused(refusal))
            }
        }
    }
}

/// Who a browser viewer is.
struct BrowserViewer {
    conn_id: u64,
    technician: TechnicianId,
    id: SessionId,
    /// Its files channel, set when the page opens it.
    files: BrowserFiles,
}

/// Serves one browser viewer until it goes.
async fn serve(transport: &Arc<Transport>, viewer: BrowserViewer, peer: Peer, admitted: Admitted) {
    let BrowserViewer { conn_id, technician, id, files } = viewer;
    let Admitted { hub, mut queue, mut frames } = admitted;
    let Peer { pc, track, ssrc, payload_type, mut channels, mut state } = peer;
    // Handed to the data channel's reader when the channel opens, so that its end (the
    // browser closing) ends `from_browser` at once.
    let (inbound, mut from_browser) = mpsc::channel::<Message>(VIEWER_QUEUE);
    let mut inbound = Some(inbound);
    let mut channel: Option<Arc<dyn DataChannel>> = None;
    let mut unsent: Vec<String> = Vec::new();
    let mut connected = false;
    let mut last_capture_us: Option<u64> = None;
    let deadline = tokio::time::sleep(BROWSER_CONNECT_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        // Biased: control messages before frames, so that a bye queued just before the hub
        // dropped this viewer (closing its frame queue too) is still delivered.
        tokio::select! {
            biased;
            () = &mut deadline, if !connected => {
                tracing::info!(session = %id, "browser viewer never connected");
                break;
            }
            changed = state.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *state.borrow_and_update();
                match now {
                    RTCPeerConnectionState::Connected if !connected => {
                        connected = true;
                        // Frames queued while connecting were not sent: start at a keyframe.
                        let mut state = hub.lock();
                        if let Some(viewer) = state.viewers.get_mut(&conn_id) {
                            viewer.needs_keyframe = true;
                        }
                        request_keyframe(&mut state);
                    }
                    RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => break,
                    _ => {}
                }
            }
            Some(opened) = channels.recv() => {
                if opened.label().await.is_ok_and(|label| label == FILES_CHANNEL) {
                    if files.set(opened.clone()).is_ok() {
                        spawn_files_reader(transport.clone(), id, conn_id, technician, opened);
                    }
                    continue;
                }
                if channel.is_some() {
                    continue;
                }
                if let Some(inbound) = inbound.take() {
                    spawn_reader(opened.clone(), inbound);
                }
                for text in unsent.drain(..) {
                    let _ = opened.send_text(&text).await;
                }
                channel = Some(opened);
            }
            message = queue.recv() => {
                let Some(message) = message else { break };
                let bye = matches!(message, Message::Bye(_));
                let Ok(text) = serde_json::to_string(&message) else { continue };
                match &channel {
                    Some(channel) => {
                        let _ = channel.send_text(&text).await;
                    }
                    None => unsent.push(text),
                }
                if bye {
                    // Let the bye reach the page before the connection closes.
                    tokio::time::sleep(BYE_GRACE).await;
                    break;
                }
            }
            frame = frames.recv() => {
                let Some((encoded, _seq)) = frame else { break };
                // Asked again for every queued frame, as for QUIC viewers.
                if !connected || hub.lock().gate.admit_frame(technician).is_none() {
                    continue;
                }
                let Ok(Message::VideoFrame(frame)) = codec::decode_exact(&encoded, MAX_VIDEO_FRAME_BYTES) else { continue };
                let duration = last_capture_us
                    .map(|last| Duration::from_micros(frame.capture_us.saturating_sub(last)))
                    .filter(|d| !d.is_zero() && *d < Duration::from_secs(1))
                    .unwrap_or(DEFAULT_FRAME_DURATION);
                last_capture_us = Some(frame.capture_us);
                let sample = Sample { data: Bytes::from(frame.data), duration, ..Sample::new(Instant::now()) };
                let show_at_once = HeaderExtension::PlayoutDelay(PlayoutDelayExtension { min_delay: 0, max_delay: 0 });
                if track.sample_writer(ssrc, payload_type).with_extension(show_at_once).write_sample(&sample).await.is_err() {
                    break;
                }
            }
            message = from_browser.recv() => {
                // The reader ends when the channel closes: the browser went away.
                let Some(message) = message else { break };
                if !on_message(transport, id, conn_id, technician, message).await {
                    break;
                }
            }
        }
    }
    leave(transport, &hub, id, conn_id, technician);
    let _ = pc.close().await;
}

/// Reads the browser's data channel: each text message one protocol message as JSON. Bad
/// ones are skipped (a browser's typo must not end the session); the channel closing ends it.
fn spawn_reader(channel: Arc<dyn DataChannel>, inbound: mpsc::Sender<Message>) {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            match event {
                DataChannelEvent::OnMessage(message) => {
                    if message.data.len() > MAX_CONTROL_MESSAGE_BYTES {
                        tracing::info!(bytes = message.data.len(), "oversized message from a browser skipped");
                        continue;
                    }
                    let parsed = serde_json::from_slice::<Message>(&message.data)
                        .map_err(|e| e.to_string())
                        .and_then(|m| m.validate().map(|()| m).map_err(|e| e.to_string()));
                    match parsed {
                        Ok(message) => {
                            if inbound.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::info!(error = %e, "bad message from a browser skipped"),
                    }
                }
                DataChannelEvent::OnClose => return,
                _ => {}
            }
        }
    });
}

/// Reads a page's files channel: each binary message a transfer's id (8 bytes, big-endian) and
/// the next bytes of its file, handed to that transfer's copy ([`files::browser_upload`],
/// started with its first chunk). The copy takes the next chunk only once the last went on,
/// so this reader waits, and SCTP's flow control slows the page.
fn spawn_files_reader(transport: Arc<Transport>, id: SessionId, conn_id: u64, technician: TechnicianId, channel: Arc<dyn DataChannel>) {
    tokio::spawn(async move {
        let mut uploads: std::collections::HashMap<u64, mpsc::Sender<Bytes>> = std::collections::HashMap::new();
        while let Some(event) = channel.poll().await {
            let DataChannelEvent::OnMessage(message) = event else {
                if matches!(event, DataChannelEvent::OnClose) {
                    return;
                }
                continue;
            };
            let data = message.data.freeze();
            if data.len() <= 8 || data.len() > 8 + super::files::BROWSER_CHUNK {
                tracing::info!(bytes = data.len(), "a page's file chunk of a wrong size skipped");
                continue;
            }
            let transfer = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
            let chunk = data.slice(8..);
            let upload = uploads.entry(transfer).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(UPLOAD_QUEUE);
                tokio::spawn(super::files::browser_upload(transport.clone(), id, conn_id, technician, transfer, rx));
                tx
            });
            if upload.send(chunk).await.is_err() {
                // That copy ended (refused, broken off, complete): the rest of it is dropped.
                continue;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::announce_public;

    #[test]
    fn the_public_address_is_announced_next_to_each_host_candidate() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108\r\n\
                   a=candidate:2693830880 1 udp 2130706431 10.0.1.5 59559 typ host\r\n\
                   a=candidate:2693830880 2 udp 2130706431 10.0.1.5 59559 typ host\r\n\
                   a=candidate:77 1 tcp 1 10.0.1.5 443 typ host tcptype passive\r\na=end-of-candidates\r\n";
        let out = announce_public(sdp, "203.0.113.7".parse().unwrap());
        let added: Vec<&str> = out.lines().filter(|l| l.contains("typ srflx")).collect();
        assert_eq!(
            added,
            [
                "a=candidate:26938308801 1 udp 1694498815 203.0.113.7 59559 typ srflx raddr 10.0.1.5 rport 59559",
                "a=candidate:26938308801 2 udp 1694498814 203.0.113.7 59559 typ srflx raddr 10.0.1.5 rport 59559",
            ]
        );
        // Everything else is kept as it was, line endings included.
        assert_eq!(out.lines().filter(|l| !l.contains("typ srflx")).collect::<Vec<_>>(), sdp.lines().collect::<Vec<_>>());
        assert!(out.split("\r\n").all(|l| !l.contains('\n')));
    }

    #[test]
    fn odd_candidate_lines_are_left_alone() {
        let sdp = "a=candidate:1 1 udp 5\r\na=candidate:garbage\r\n";
        assert_eq!(announce_public(sdp, "203.0.113.7".parse().unwrap()), sdp);
    }
}
