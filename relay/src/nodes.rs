//! What relay nodes sharing one PostgreSQL database tell each other (LISTEN/NOTIFY through
//! the database: no channel of our own between nodes).
//!
//! Every change is in the database already; a notice only says *what* changed, so each node
//! brings its own consoles' live streams and its own connections (hubs) up to date: a session
//! changed (its row is loaded again here, so notices can never carry a stale state), a chat
//! line (passed as it was sent), the relay-wide settings changed. When the listening
//! connection was lost, notices may have been missed: consoles are told to reload, every hub
//! reloads its session and the settings are read again.

use crate::desk::Desk;
use crate::error::Error;
use crate::store::NodeRow;
use crate::views::SessionEvent;
use deskline_api::SessionDescription;
use deskline_protocol::{ChannelId, SessionId};
use serde::{Deserialize, Serialize};

/// What changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Notice {
    /// A session's row (and its channel before a transfer).
    Session { id: i64, before_channel: Option<i64> },
    /// A live event passed as it is (chat lines: they are not part of the session's row), with
    /// a technician's line for the app wherever it is connected.
    Event(Box<SessionEvent>),
    /// The relay-wide settings.
    Settings,
}

/// A notice on the wire, with the node that sent it (which ignores its own).
#[derive(Serialize, Deserialize)]
struct Wire {
    node: String,
    #[serde(flatten)]
    notice: Notice,
}

/// A random name for this process among the nodes.
pub(crate) fn new_node_id() -> String {
    crate::auth::new_token()
}

impl Desk {
    /// Tells the other relay nodes (if any share the database) what changed.
    pub(crate) fn tell_other_nodes(&self, notice: Notice) {
        if !self.db().is_postgres() {
            return;
        }
        match serde_json::to_string(&Wire { node: self.node_id().to_owned(), notice }) {
            Ok(payload) => self.db().notify(payload),
            Err(e) => tracing::error!(error = %e, "cannot encode a notice for the other relay nodes"),
        }
    }

    /// Follows what the other relay nodes notify, for as long as the relay runs (nothing to
    /// follow for a relay alone on SQLite).
    pub fn follow_other_nodes(&self) {
        let Some(mut notices) = self.db().listen() else { return };
        let desk = self.clone();
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                match notice {
                    Some(payload) => desk.take_notice(&payload).await,
                    None => desk.resynchronise().await,
                }
            }
        });
    }

    async fn take_notice(&self, payload: &str) {
        let wire: Wire = match serde_json::from_str(payload) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::warn!(error = %e, "a notice from another relay node does not parse");
                return;
            }
        };
        if wire.node == self.node_id() {
            return;
        }
        match wire.notice {
            Notice::Session { id, before_channel } => match self.session_row(SessionId(id)).await {
                Ok(Some(row)) => self.announce_here(before_channel.map(ChannelId), &row),
                Ok(None) => {}
                Err(e) => tracing::error!(session = id, error = %e, "cannot load a session another relay node changed"),
            },
            Notice::Event(event) => self.send_here(*event),
            Notice::Settings => {
                if let Err(e) = self.reload_settings().await {
                    tracing::error!(error = %e, "cannot load the settings another relay node changed");
                }
            }
        }
    }

    /// Notices may have been missed: everything that follows them loads again.
    async fn resynchronise(&self) {
        tracing::warn!("the other relay nodes' notices were interrupted: reloading");
        if let Err(e) = self.reload_settings().await {
            tracing::error!(error = %e, "cannot load the settings");
        }
        self.send_here(SessionEvent { live: deskline_api::LiveEvent::Resync, channels: Vec::new(), technicians: Vec::new(), id: SessionId(0), for_app: None });
    }
}

/// The header of a request one relay node passes to another (which then answers it itself).
pub(crate) const FORWARDED: &str = "x-deskline-forwarded";

/// How long the node holding a session gets to answer a browser's offer passed to it (it
/// gathers its ICE candidates first); a recording passed on streams as long as it takes.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// An HTTPS client for `node`'s API: pinned to its certificate when it serves the relay's own
/// (the nodes share it), the web PKI otherwise.
fn client_for(node: &NodeRow, timeout: Option<std::time::Duration>) -> Result<reqwest::Client, Error> {
    let pin = node.url_pin.as_deref().map(deskline_net::tls::parse_fingerprint).transpose().map_err(|e| Error::Internal(e.to_string()))?;
    let mut builder = reqwest::Client::builder().use_preconfigured_tls(deskline_net::tls::client_config(pin));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().map_err(|e| Error::Internal(e.to_string()))
}

/// `node` did not answer: a 502 the caller may retry.
fn unreachable(node: &NodeRow, e: &reqwest::Error) -> Error {
    tracing::warn!(node = %node.url, error = %e, "the relay node holding the session does not answer");
    let body = serde_json::json!({"error": {"code": "node_unreachable", "message": "the relay node serving this session does not answer; try again"}});
    Error::Forwarded { status: 502, body: body.to_string() }
}

/// Passes a browser's WebRTC offer for session `id` to `node`, which holds the session's app,
/// with the technician's own token (the node checks it, and the technician's right to view,
/// against the shared database). Its answer — the browser then connects to that node for the
/// media — or its refusal comes back as it was given.
pub(crate) async fn forward_offer(node: &NodeRow, token: &str, id: i64, offer: &SessionDescription) -> Result<SessionDescription, Error> {
    let url = format!("{}/api/v1/sessions/{id}/webrtc", node.url.trim_end_matches('/'));
    let request = client_for(node, Some(FORWARD_TIMEOUT))?.post(&url).bearer_auth(token).header(FORWARDED, "1").json(offer);
    let response = request.send().await.map_err(|e| unreachable(node, &e))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| unreachable(node, &e))?;
    if status == 200 {
        serde_json::from_str(&body).map_err(|e| Error::Internal(format!("the node's answer: {e}")))
    } else {
        Err(Error::Forwarded { status, body })
    }
}

/// Passes a GET of the API (`path` under `/api/v1`: a recording's video or log, whose files
/// are in `node`'s data directory) to `node` with the technician's own token, and streams its
/// answer back as it comes (status, type, length, name, body).
pub(crate) async fn forward_get(node: &NodeRow, token: &str, path: &str) -> Result<axum::response::Response, Error> {
    use axum::http::header;
    let url = format!("{}/api/v1{path}", node.url.trim_end_matches('/'));
    let response = client_for(node, None)?.get(&url).bearer_auth(token).header(FORWARDED, "1").send().await.map_err(|e| unreachable(node, &e))?;
    let mut answer = axum::response::Response::builder().status(response.status().as_u16());
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_DISPOSITION] {
        if let Some(value) = response.headers().get(name.as_str()).and_then(|v| v.to_str().ok()) {
            answer = answer.header(name, value);
        }
    }
    answer.body(axum::body::Body::from_stream(response.bytes_stream())).map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::clock::ManualClock;
    use crate::desk::{Desk, NewTechnician, QuicEndpoint};
    use crate::store::{Db, Role};
    use deskline_protocol::session::{Action, Actor, SessionKind, SessionState};
    use deskline_protocol::{ChannelId, SessionId, Timestamp};
    use std::sync::Arc;
    use std::time::Duration;

    /// The database restarted (or failed over, or was cut off) for longer than a node's
    /// silence means death: when it is back, the first node to beat again must not take the
    /// sessions of nodes that beat a moment later — only a node that stays silent while this
    /// one reaches the database is dead.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: scripts/with-postgres.sh runs it"]
    async fn after_a_database_outage_no_node_takes_the_live_nodes_sessions() {
        let admin = std::env::var("DESKLINE_TEST_DATABASE_URL").expect("run it through scripts/with-postgres.sh");
        let url = crate::store::test_database_url().expect("a server").expect("a database");
        let db = Db::connect(&url).expect("connected");
        let clock = ManualClock::new(Timestamp(1_800_000_000_000));
        let node = |quic: &str| {
            let desk = Desk::new(db.clone(), Arc::new(clock.clone()), "https://desk.example".into());
            desk.set_quic_endpoint(QuicEndpoint { quic: quic.into(), fingerprint: "ab".into() });
            desk
        };
        let (a, b) = (node("127.0.0.1:4433"), node("127.0.0.1:4434"));
        a.ensure_default_channel_blocking().expect("the default channel");
        let new = NewTechnician { username: "ada".into(), display_name: "Ada".into(), password: "correct horse battery".into(), role: Role::Admin, one_time: false };
        a.create_technician(None, new).await.expect("an admin");
        let token = a.login("ada".into(), "correct horse battery".into(), None, None).await.expect("login").0;
        let ada = a.authenticate(&token).await.expect("signed in");
        let session = a.create_session(&ada, ChannelId(1), SessionKind::Pin, None).await.expect("a session");
        let id = SessionId(session.id);
        // Its app is connected to node B.
        b.act_as(Actor::App, id, Action::AppConnected { resumed: false }).await.expect("connected");
        a.beat().await.expect("A beats");
        b.beat().await.expect("B beats");

        crate::store::set_reachable(&admin, &url, false).expect("the database out of reach");
        assert!(a.beat().await.is_err() && b.beat().await.is_err(), "no heartbeat gets through");
        clock.advance(Duration::from_secs(30));
        crate::store::set_reachable(&admin, &url, true).expect("the database back");
        a.beat().await.expect("A beats again first");
        assert_eq!(a.recover_lost_apps().await.expect("swept"), 0, "B's silence was the database's");
        clock.advance(Duration::from_secs(2));
        b.beat().await.expect("B beats again");
        for _ in 0..5 {
            clock.advance(Duration::from_secs(2));
            a.beat().await.expect("A beats");
            b.beat().await.expect("B beats");
            assert_eq!(a.recover_lost_apps().await.expect("swept"), 0, "B is alive");
        }
        // Now B goes silent while A reaches the database: B is dead after the usual silence.
        for _ in 0..4 {
            clock.advance(Duration::from_secs(2));
            a.beat().await.expect("A beats");
        }
        assert_eq!(a.recover_lost_apps().await.expect("swept"), 0, "8 s of silence are not death");
        clock.advance(Duration::from_secs(3));
        a.beat().await.expect("A beats");
        assert_eq!(a.recover_lost_apps().await.expect("swept"), 1, "11 s are");
        let row = a.session_row(id).await.expect("read").expect("the session");
        assert_eq!(row.core.state, SessionState::Waiting);
    }
}
