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
use crate::views::SessionEvent;
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
    Event(SessionEvent),
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
            Notice::Event(event) => self.send_here(event),
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
