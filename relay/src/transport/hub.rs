//! One hub per session with a live connection: the app's link, the viewers' links, and the
//! consent gate between them.
//!
//! A hub never decides session state: after every change (from the API, the app, the expiry
//! sweep) it reloads the session from the store and brings its connections in line — consent
//! grant, pending consent request, who may view, whether the app should stream.

use super::gate::{ClipboardPass, ConsentGate, FramePass, InputPass};
use deskline_protocol::session::PendingConsent;
use crate::desk::Desk;
use crate::recording::Recorder;
use crate::limits::DEFAULT_BITRATE_BPS;
use crate::store::SessionRow;
use bytes::Bytes;
use deskline_protocol::session::SessionState;
use deskline_protocol::{
    Access, AccessGrant, Bye, ByeReason, ChatLine, ClipboardText, ConsentRequest, ControlHandover, DisplayInfo, DisplaysChanged, InputEvent, Message,
    PauseReason, ScreenState,
    SessionId, StartStream, Stats, StopStream, TechnicianId, Timestamp,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Keyframe requests to the app at most this often: one keyframe serves every viewer waiting.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

/// The connected app.
pub(super) struct AppLink {
    pub conn_id: u64,
    pub out: mpsc::Sender<Message>,
    pub connection: quinn::Connection,
}

/// How a viewer is connected.
pub(super) enum ViewerCarrier {
    /// The native viewer or the CLI, over QUIC.
    Quic(quinn::Connection),
    /// A browser over WebRTC. Its task ends the peer connection when the link's queues close
    /// (the link dropped) or a bye arrives in them.
    Browser(BrowserFiles),
}

/// A browser viewer's data channel for files (`files`), once the page has opened it: the
/// relay sends the end user's files to the page on it (`files::copy`).
pub(super) type BrowserFiles = Arc<std::sync::OnceLock<Arc<dyn webrtc::data_channel::DataChannel>>>;

impl ViewerCarrier {
    /// The round-trip time, where known (a browser's is not measured yet).
    fn rtt(&self) -> Duration {
        match self {
            ViewerCarrier::Quic(connection) => connection.rtt(),
            ViewerCarrier::Browser(_) => Duration::ZERO,
        }
    }

    /// Closes the connection once a final message could still be delivered.
    fn close_soon(&self) {
        if let ViewerCarrier::Quic(connection) = self {
            close_soon(connection.clone());
        }
    }
}

/// A connected viewer.
pub(super) struct ViewerLink {
    pub technician: TechnicianId,
    pub out: mpsc::Sender<Message>,
    pub frames: mpsc::Sender<(Bytes, u64)>,
    pub needs_keyframe: bool,
    /// Frames numbered below this are stale for this viewer: older than the keyframe it was
    /// last sent, or than a frame it had to skip (see [`forward_frame`]).
    pub stale_before: Option<u64>,
    pub carrier: ViewerCarrier,
    /// What reached this viewer's queue since the last [`take_stats`].
    pub window: DeliveryWindow,
}

impl ViewerLink {
    /// The stream (re)starts, perhaps numbered anew: wait for its keyframe.
    fn restart_stream(&mut self) {
        self.needs_keyframe = true;
        self.stale_before = None;
    }
}

/// Frames a viewer got and lost over one statistics window.
#[derive(Default)]
pub(super) struct DeliveryWindow {
    frames: u32,
    dropped: u32,
    bytes: u64,
}

pub(super) struct HubState {
    pub gate: ConsentGate,
    pub app: Option<AppLink>,
    pub viewers: HashMap<u64, ViewerLink>,
    sent_request: Option<u64>,
    /// Who may see and control, as the app was last told (`None`: not told yet on this
    /// connection).
    access_sent: Option<Vec<AccessGrant>>,
    /// Who may see and control, as the viewers were last told (each gets it on joining too):
    /// a viewer says "the end user stopped sharing" or offers control only with a grant.
    pub access: Vec<AccessGrant>,
    streaming: bool,
    last_keyframe_request: Option<Instant>,
    /// A keyframe request is scheduled for the end of the current interval.
    keyframe_deferred: Arc<std::sync::atomic::AtomicBool>,
    /// Technicians allowed to view (assigned and invited), as last loaded.
    pub on_session: Vec<TechnicianId>,
    /// The display viewers chose (0: the app's primary).
    display: u32,
    /// The app's displays as it last reported them on this connection (`None`: only what it
    /// said in its hello, which is in the store).
    pub displays: Option<Vec<DisplayInfo>>,
    /// Why the app's picture stopped, while it is stopped (told to viewers as they join).
    pub paused: Option<PauseReason>,
    /// The frame rate asked of the app.
    max_fps: u16,
    stats_window_started: Instant,
    /// Files offered or on their way.
    pub transfers: super::files::Transfers,
    /// Does the session's channel record remote sessions (as last loaded)?
    recording: bool,
    /// The recorder, while the app streams and the channel records.
    recorder: Option<Recorder>,
    /// Where the controlling technician's pointer last went (for the recording's log).
    pointer: (u32, u32),
}

impl HubState {
    fn new(max_fps: u16) -> HubState {
        HubState {
            gate: ConsentGate::default(),
            app: None,
            viewers: HashMap::new(),
            sent_request: None,
            access_sent: None,
            access: Vec::new(),
            streaming: false,
            last_keyframe_request: None,
            keyframe_deferred: Arc::default(),
            on_session: Vec::new(),
            display: 0,
            displays: None,
            paused: None,
            max_fps,
            stats_window_started: Instant::now(),
            transfers: super::files::Transfers::default(),
            recording: false,
            recorder: None,
            pointer: (0, 0),
        }
    }
}

/// A session's connections.
pub(super) struct Hub {
    state: Mutex<HubState>,
    /// Held while a change is applied to the hub (refresh, consent withdrawal), so an older
    /// view of the session can never overwrite a newer one.
    pub refreshing: tokio::sync::Mutex<()>,
}

impl Hub {
    fn new(max_fps: u16) -> Hub {
        Hub { state: Mutex::new(HubState::new(max_fps)), refreshing: tokio::sync::Mutex::new(()) }
    }

    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every hub, by session.
pub(super) struct Hubs {
    pub desk: Desk,
    /// The frame rate asked of apps.
    max_fps: u16,
    map: Mutex<HashMap<SessionId, Arc<Hub>>>,
}

fn bye(reason: ByeReason, message: &str) -> Message {
    Message::Bye(Bye { reason, message: message.to_owned() })
}

impl Hubs {
    pub fn new(desk: Desk, max_fps: u16) -> Arc<Hubs> {
        Arc::new(Hubs { desk, max_fps, map: Mutex::new(HashMap::new()) })
    }

    /// The session's hub, if it has one.
    pub fn existing(&self, id: SessionId) -> Option<Arc<Hub>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned()
    }

    /// Follows the desk's session events for as long as the relay runs.
    pub fn follow(self: &Arc<Self>) {
        let hubs = self.clone();
        let mut events = self.desk.subscribe();
        tokio::spawn(async move {
            loop {
                let missed = match events.recv().await {
                    Ok(event) if !matches!(event.live, deskline_api::LiveEvent::Resync) => {
                        // A technician's chat line said through another relay node.
                        if let (Some(line), Some(hub)) = (&event.for_app, hubs.existing(event.id)) {
                            send_chat(&hub.lock(), line);
                        }
                        hubs.refresh(event.id).await;
                        false
                    }
                    // Changes were missed (too slow here, or another relay node's notices were
                    // interrupted): every hub reloads.
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if missed {
                    let ids: Vec<SessionId> =
                        hubs.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys().copied().collect();
                    for id in ids {
                        hubs.refresh(id).await;
                    }
                }
            }
        });
    }

    /// Reloads the session and brings its hub in line with it.
    pub async fn refresh(&self, id: SessionId) {
        let Some(hub) = self.existing(id) else { return };
        // Serialised per hub: the last refresh to run loads the latest state.
        let _serial = hub.refreshing.lock().await;
        let row = match self.desk.session_row(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(session = %id, error = %e, "cannot load session for its connections");
                return;
            }
        };
        // The names the app shows: who asks, and who may see or control.
        let consent = &row.core.consent;
        let mut names = HashMap::new();
        for technician in consent.pending.iter().map(|p| p.requested_by).chain(consent.grants.iter().map(|g| g.technician)) {
            if let Ok(name) = self.desk.technician_name(technician).await {
                names.insert(technician, name);
            }
        }
        let now = self.desk.now();
        let records = self.desk.records(id).await;
        // Several relay nodes: the app connected (or resumed) on another node, which serves
        // its viewers now.
        let moved = matches!(self.desk.media_elsewhere(&row).await, Ok(Some(_)));
        let mut state = hub.lock();
        if moved {
            send_viewers_elsewhere(&mut state);
        }
        self.apply(&mut state, &row, &names, now, records);
        drop(state);
        self.release_if_idle(id);
    }

    /// Runs `f` on the session's hub (created if needed) under the map's lock, so a hub being
    /// released as idle can never swallow a connection registering at the same moment.
    pub fn register<T>(&self, id: SessionId, f: impl FnOnce(&mut HubState) -> T) -> (Arc<Hub>, T) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let hub = map.entry(id).or_insert_with(|| Arc::new(Hub::new(self.max_fps))).clone();
        let value = f(&mut hub.lock());
        (hub, value)
    }

    /// Tells every app and viewer the relay is going down (apps come back by themselves and
    /// resume; viewers say why they ended).
    pub fn say_goodbye(&self) {
        let hubs: Vec<Arc<Hub>> = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        let goodbye = bye(ByeReason::ServerShutdown, "the relay is restarting");
        for hub in hubs {
            let state = hub.lock();
            if let Some(app) = &state.app {
                let _ = app.out.try_send(goodbye.clone());
            }
            for viewer in state.viewers.values() {
                let _ = viewer.out.try_send(goodbye.clone());
            }
        }
    }

    /// Connected apps, and viewers by kind (`quic`, `browser`).
    pub fn connected(&self) -> (i64, [(&'static str, i64); 2]) {
        let hubs: Vec<Arc<Hub>> = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        let (mut apps, mut quic, mut browser) = (0, 0, 0);
        for hub in hubs {
            let state = hub.lock();
            apps += i64::from(state.app.is_some());
            for viewer in state.viewers.values() {
                match viewer.carrier {
                    ViewerCarrier::Quic(_) => quic += 1,
                    ViewerCarrier::Browser(_) => browser += 1,
                }
            }
        }
        (apps, [("quic", quic), ("browser", browser)])
    }

    /// Forgets the session's hub if nothing is connected.
    pub fn release_if_idle(&self, id: SessionId) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let idle = map.get(&id).is_some_and(|hub| {
            let state = hub.lock();
            state.app.is_none() && state.viewers.is_empty()
        });
        if idle {
            map.remove(&id);
        }
    }

    fn apply(&self, state: &mut HubState, row: &SessionRow, names: &HashMap<TechnicianId, String>, now: Timestamp, records: bool) {
        let s = &row.core;
        state.recording = records;
        if s.deleted || !s.state.is_live() || !records {
            // (The channel stopped recording: the file being written ends.)
            state.recorder = None;
        }
        if s.deleted || !s.state.is_live() {
            let (reason, text) = match s.state {
                SessionState::Expired => (ByeReason::SessionExpired, "the session expired"),
                _ => (ByeReason::SessionClosed, "the technician closed the session"),
            };
            state.gate.set_grants(&[]);
            if let Some(app) = state.app.take() {
                let _ = app.out.try_send(bye(reason, text));
                close_soon(app.connection);
            }
            for (_, viewer) in state.viewers.drain() {
                let _ = viewer.out.try_send(bye(reason, text));
                viewer.carrier.close_soon();
            }
            return;
        }
        // The chokepoint follows the stored consent, technician by technician.
        let controller_before = state.gate.controller();
        state.gate.set_grants(s.consent.active_grants());
        state.on_session = s.technicians().collect();
        // Viewers whose technician left the session (released, transferred) go.
        let on_session = state.on_session.clone();
        state.viewers.retain(|_, v| {
            let stays = on_session.contains(&v.technician);
            if !stays {
                let _ = v.out.try_send(bye(ByeReason::ConsentWithdrawn, "you are no longer on this session"));
                v.carrier.close_soon();
            }
            stays
        });
        if state.gate.controller().is_some_and(|c| !on_session.contains(&c)) {
            state.gate.hand_control_to(None);
        }
        if state.gate.controller() != controller_before {
            announce_controller(state);
        }
        let name_of = |t: TechnicianId| names.get(&t).cloned().unwrap_or_else(|| "a technician".into());
        // The app shows who may see and control: told after every change.
        let access: Vec<AccessGrant> = state
            .gate
            .grants()
            .iter()
            .map(|g| AccessGrant { technician: g.technician, name: name_of(g.technician), capabilities: g.capabilities })
            .collect();
        if let Some(app) = &state.app
            && state.access_sent.as_ref() != Some(&access)
            && app.out.try_send(Message::Access(Access { grants: access.clone(), answered: None })).is_ok()
        {
            state.access_sent = Some(access.clone());
        }
        if state.access != access {
            for viewer in state.viewers.values() {
                let _ = viewer.out.try_send(Message::Access(Access { grants: access.clone(), answered: None }));
            }
            record_log(state, "consent", access_text(&access));
            state.access = access;
        }
        // A new consent request goes to the app once.
        if let Some(PendingConsent { request_id, requested_by, capabilities, deadline }) = s.consent.pending
            && state.sent_request != Some(request_id)
            && let Some(app) = &state.app
        {
            let timeout_ms = u32::try_from(deadline.0.saturating_sub(now.0).max(0)).unwrap_or(u32::MAX);
            let request = ConsentRequest {
                request_id,
                organisation: self.desk.organisation(),
                technician: name_of(requested_by),
                technician_id: requested_by,
                capabilities,
                timeout_ms,
                recorded: records,
            };
            if app.out.try_send(Message::ConsentRequest(request)).is_ok() {
                state.sent_request = Some(request_id);
            }
        }
        update_streaming(state);
    }
}

/// Starts or stops the app's stream: it streams while a viewer is connected whose technician
/// the end user allows to view.
pub(super) fn update_streaming(state: &mut HubState) {
    let want = state.app.is_some() && state.viewers.values().any(|v| state.gate.granted_to(v.technician).view());
    if want == state.streaming {
        return;
    }
    let Some(app) = &state.app else {
        state.streaming = false;
        return;
    };
    let message = if want {
        start_stream(state)
    } else {
        Message::StopStream(StopStream { display: 0 })
    };
    if app.out.try_send(message).is_ok() {
        state.streaming = want;
        if !want {
            // The picture stopped: the recording's file ends here.
            state.recorder = None;
        }
        state.stats_window_started = Instant::now();
        for viewer in state.viewers.values_mut() {
            viewer.restart_stream();
            viewer.window = DeliveryWindow::default();
        }
    }
}

fn start_stream(state: &HubState) -> Message {
    Message::StartStream(StartStream { display: state.display, max_fps: state.max_fps, bitrate_hint_bps: DEFAULT_BITRATE_BPS })
}

/// Records the app's new display list and passes it on to every viewer, under the hub's lock
/// so a viewer joining at the same moment gets either the old list and this message, or the
/// new list.
pub(super) fn displays_changed(state: &mut HubState, displays: Vec<DisplayInfo>) {
    let message = Message::DisplaysChanged(DisplaysChanged { displays: displays.clone() });
    for viewer in state.viewers.values() {
        let _ = viewer.out.try_send(message.clone());
    }
    state.displays = Some(displays);
}

/// Records that the app's picture stopped (and why) or runs again, and tells every viewer.
pub(super) fn screen_state(state: &mut HubState, paused: Option<PauseReason>) {
    state.paused = paused;
    let message = Message::ScreenState(ScreenState { paused });
    for viewer in state.viewers.values() {
        let _ = viewer.out.try_send(message.clone());
    }
}

/// Shows another display to every viewer: while streaming, the app is told at once and every
/// viewer waits for the new display's keyframe.
pub(super) fn select_display(state: &mut HubState, display: u32) {
    if state.display == display {
        return;
    }
    state.display = display;
    if state.streaming
        && let Some(app) = &state.app
        && app.out.try_send(start_stream(state)).is_ok()
    {
        for viewer in state.viewers.values_mut() {
            viewer.restart_stream();
        }
    }
}

/// The statistics window that ends now, for the app's rate adaptation: what the worst-served
/// viewer got (fewest frames and bytes, most drops, longest round trip). `None` while not
/// streaming.
pub(super) fn take_stats(state: &mut HubState) -> Option<Stats> {
    if !state.streaming || state.viewers.is_empty() {
        return None;
    }
    let window_ms = u32::try_from(state.stats_window_started.elapsed().as_millis()).unwrap_or(u32::MAX);
    state.stats_window_started = Instant::now();
    let mut stats = Stats { window_ms, frames: u32::MAX, frames_dropped: 0, bytes: u64::MAX, latency_p50_us: 0, rtt_us: 0 };
    for viewer in state.viewers.values_mut() {
        let window = std::mem::take(&mut viewer.window);
        stats.frames = stats.frames.min(window.frames);
        stats.frames_dropped = stats.frames_dropped.max(window.dropped);
        stats.bytes = stats.bytes.min(window.bytes);
        let rtt = u32::try_from(viewer.carrier.rtt().as_micros()).unwrap_or(u32::MAX);
        stats.rtt_us = stats.rtt_us.max(rtt);
    }
    Some(stats)
}

/// Marks the app's link gone (if `conn_id` is still the app) and forgets a sent request.
pub(super) fn app_gone(state: &mut HubState, conn_id: u64) -> bool {
    if state.app.as_ref().is_none_or(|a| a.conn_id != conn_id) {
        return false;
    }
    state.app = None;
    state.transfers.forget(super::files::Party::App);
    state.streaming = false;
    state.recorder = None;
    state.sent_request = None;
    // The next app connection reports its displays in its hello (stored) or later.
    state.displays = None;
    if state.paused.take().is_some() {
        screen_state(state, None);
    }
    // Nothing flows without an app; a new app starts from the stored consent on refresh.
    state.gate.set_grants(&[]);
    state.access_sent = None;
    true
}

/// Answers the app's decision on consent request `request_id` with who may see and control
/// now (as the last refresh left it).
pub(super) fn answer_decision(state: &HubState, request_id: u64) {
    if let Some(app) = &state.app {
        let grants = state.access_sent.clone().unwrap_or_default();
        let _ = app.out.try_send(Message::Access(Access { grants, answered: Some(request_id) }));
    }
}

/// Sends a recorded chat line to the app and the native viewers (browsers' consoles get it
/// from their live events).
pub(super) fn send_chat(state: &HubState, line: &ChatLine) {
    let from = match &line.from {
        deskline_protocol::ChatFrom::EndUser => "end user",
        deskline_protocol::ChatFrom::Technician { name, .. } => name,
    };
    record_log(state, "chat", format!("{from}: {}", line.text));
    let message = Message::Chat(line.clone());
    if let Some(app) = &state.app {
        let _ = app.out.try_send(message.clone());
    }
    for viewer in state.viewers.values().filter(|v| matches!(v.carrier, ViewerCarrier::Quic(_))) {
        let _ = viewer.out.try_send(message.clone());
    }
}

/// Tells every viewer and the app who holds control.
pub(super) fn announce_controller(state: &HubState) {
    record_log(state, "control", control_text(state));
    let message = Message::ControlHandover(ControlHandover { holder: state.gate.controller() });
    for viewer in state.viewers.values() {
        let _ = viewer.out.try_send(message.clone());
    }
    if let Some(app) = &state.app {
        let _ = app.out.try_send(message);
    }
}

/// Asks the app for a keyframe, at most every [`KEYFRAME_REQUEST_INTERVAL`]. A request within
/// the interval is not dropped but sent when it ends: a viewer joining a still screen just
/// after another one would otherwise wait for the app's periodic keyframe (seconds of black).
pub(super) fn request_keyframe(state: &mut HubState) {
    let Some(app) = &state.app else { return };
    let since = state.last_keyframe_request.map(|t| t.elapsed());
    match since.and_then(|since| KEYFRAME_REQUEST_INTERVAL.checked_sub(since)).filter(|rest| !rest.is_zero()) {
        None => {
            if app.out.try_send(Message::KeyframeRequest).is_ok() {
                state.last_keyframe_request = Some(Instant::now());
            }
        }
        Some(rest) => {
            use std::sync::atomic::Ordering;
            if state.keyframe_deferred.swap(true, Ordering::AcqRel) {
                return; // one is already on its way and serves this viewer too
            }
            let (out, deferred) = (app.out.clone(), state.keyframe_deferred.clone());
            state.last_keyframe_request = Some(Instant::now() + rest);
            tokio::spawn(async move {
                tokio::time::sleep(rest).await;
                deferred.store(false, Ordering::Release);
                let _ = out.try_send(Message::KeyframeRequest);
            });
        }
    }
}

/// Offers a frame to every viewer whose technician the end user allows to view: the gate's
/// pass is asked for each viewer, so no frame reaches a technician without the end user's
/// current consent to them.
pub(super) fn forward_frame(state: &mut HubState, metrics: &crate::metrics::Metrics, encoded: &Bytes, seq: u64, keyframe: bool) {
    let mut want_keyframe = false;
    let HubState { gate, viewers, .. } = state;
    for viewer in viewers.values_mut() {
        let Some(pass) = gate.admit_frame(viewer.technician) else { continue };
        // Each frame has a stream of its own, so a frame can arrive after newer ones: one older
        // than the keyframe this viewer was sent, or than a frame it skipped, is stale — the
        // picture moved on, and a keyframe from before a skip does not repair it (found by the
        // load test: a late keyframe ended the wait after a skip, and the P-frames after it
        // referred to the skipped frame).
        if viewer.stale_before.is_some_and(|first_fresh| seq < first_fresh) {
            metrics.frames_dropped.inc();
            continue;
        }
        if viewer.needs_keyframe && !keyframe {
            // Skipped: a keyframe from before it would not repair the picture either.
            viewer.stale_before = Some(viewer.stale_before.unwrap_or(0).max(seq.saturating_add(1)));
            want_keyframe = true;
            continue;
        }
        match queue_frame(&pass, viewer, encoded, seq) {
            Ok(()) => {
                viewer.needs_keyframe = false;
                if keyframe {
                    viewer.stale_before = Some(seq);
                }
                viewer.window.frames = viewer.window.frames.saturating_add(1);
                viewer.window.bytes += encoded.len() as u64;
                metrics.frames_forwarded.inc();
                metrics.frame_bytes_forwarded.inc_by(encoded.len() as u64);
            }
            // Too far behind: skip to the next keyframe rather than slow anyone down.
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.frames_dropped.inc();
                viewer.needs_keyframe = true;
                viewer.stale_before = Some(seq.saturating_add(1));
                viewer.window.dropped = viewer.window.dropped.saturating_add(1);
                want_keyframe = true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    if want_keyframe {
        request_keyframe(state);
    }
}

/// Puts a frame in one viewer's queue. Requires the gate's pass for that viewer.
fn queue_frame(
    _pass: &FramePass,
    viewer: &mut ViewerLink,
    encoded: &Bytes,
    seq: u64,
) -> Result<(), mpsc::error::TrySendError<(Bytes, u64)>> {
    viewer.frames.try_send((encoded.clone(), seq))
}

/// Sends input to the app. Requires the gate's pass: only the controlling technician's input,
/// only while the end user grants control.
pub(super) fn forward_input(_pass: InputPass, state: &mut HubState, event: InputEvent) {
    if state.recorder.is_some()
        && let Some(text) = input_text(&mut state.pointer, &event)
    {
        record_log(state, "input", text);
    }
    if let Some(app) = &state.app
        && app.out.try_send(Message::Input(event)).is_err()
    {
        tracing::warn!("app input queue full: event dropped");
    }
}

/// Puts a technician's copied text on the end user's clipboard. Requires the gate's pass: only
/// the controlling technician's, only with the clipboard granted to them.
pub(super) fn clipboard_to_app(_pass: ClipboardPass, state: &HubState, text: ClipboardText) -> bool {
    let bytes = text.text.len();
    let sent = state.app.as_ref().is_some_and(|app| app.out.try_send(Message::Clipboard(text)).is_ok());
    if sent {
        record_log(state, "clipboard", format!("{bytes} bytes of copied text to the end user"));
    }
    sent
}

/// Sends the end user's copied text to one viewer. Requires the gate's pass for that viewer's
/// technician.
pub(super) fn clipboard_to_viewer(_pass: ClipboardPass, viewer: &ViewerLink, text: ClipboardText) -> bool {
    viewer.out.try_send(Message::Clipboard(text)).is_ok()
}

/// How long a connection stays open after its final message (a bye), so it is delivered:
/// a few round trips on any network a session works over.
pub(super) const BYE_GRACE: Duration = Duration::from_millis(200);

/// Closes a connection after a moment, so a final message (bye) can still be delivered.
pub(super) fn close_soon(connection: quinn::Connection) {
    tokio::spawn(async move {
        tokio::time::sleep(BYE_GRACE).await;
        connection.close(0u32.into(), b"bye");
    });
}

/// Records a picture the app sent, unchanged, when the session's channel records (the
/// recorder starts with the first picture; a picture it could not take costs a keyframe).
pub(super) fn record_picture(state: &mut HubState, desk: &Desk, id: SessionId, frame: deskline_protocol::VideoFrame) {
    if !state.recording || !state.streaming || frame.codec != deskline_protocol::VideoCodec::H264 {
        return;
    }
    let Some(dir) = desk.recordings_dir() else { return };
    let mut need_keyframe = false;
    if state.recorder.is_none() {
        let context = vec![("consent", access_text(&state.access)), ("control", control_text(state))];
        state.recorder = Some(Recorder::start(desk.clone(), id, dir.to_path_buf(), context));
        // A file starts at a keyframe: started mid-stream (the channel began recording), ask.
        need_keyframe = !frame.keyframe;
    }
    let taken = state.recorder.as_mut().is_some_and(|r| r.picture(frame.data, frame.keyframe, frame.width, frame.height));
    if need_keyframe || (!taken && !frame.keyframe) {
        request_keyframe(state);
    }
}

/// Adds a line to the recording's timed log, while one is being written.
pub(super) fn record_log(state: &HubState, kind: &'static str, text: String) {
    if let Some(recorder) = &state.recorder {
        recorder.log(kind, text);
    }
}

/// Who may see and control, for the recording's log.
fn access_text(access: &[AccessGrant]) -> String {
    if access.is_empty() {
        return "the end user allows nobody".into();
    }
    let grants: Vec<String> = access.iter().map(|g| format!("{} ({})", g.name, g.capabilities)).collect();
    format!("the end user allows {}", grants.join("; "))
}

/// Who holds control, for the recording's log.
fn control_text(state: &HubState) -> String {
    match state.gate.controller() {
        None => "nobody has control".into(),
        Some(holder) => {
            let name = state.access.iter().find(|g| g.technician == holder).map_or("a technician", |g| g.name.as_str());
            format!("{name} has control")
        }
    }
}

/// A technician's input as the recording's log says it: clicks where they happened, wheel
/// turns, key presses by key, typed text by length (pointer moves only move `pointer`).
fn input_text(pointer: &mut (u32, u32), event: &InputEvent) -> Option<String> {
    use deskline_protocol::Press;
    match event {
        InputEvent::PointerMove { x, y } => {
            *pointer = (*x, *y);
            None
        }
        InputEvent::Button { button, press: Press::Down } => Some(format!("{button:?} button pressed at {}, {}", pointer.0, pointer.1)),
        InputEvent::Wheel { dx, dy } => Some(format!("wheel turned by {dx}, {dy} at {}, {}", pointer.0, pointer.1)),
        InputEvent::Key { code, press: Press::Down, .. } => Some(format!("key {code:?}")),
        InputEvent::Text { text } => Some(format!("{} characters typed", text.chars().count())),
        _ => None,
    }
}

/// The session's app is connected to another relay node now: its viewers here are told to join
/// again (as after a relay restart), and are sent there when they do.
fn send_viewers_elsewhere(state: &mut HubState) {
    for (_, viewer) in state.viewers.drain() {
        let _ = viewer.out.try_send(bye(ByeReason::ServerShutdown, "the session's support app moved to another relay node"));
        viewer.carrier.close_soon();
    }
}
