//! The relay's HTTP API as the benchmarks use it, through the console's typed client: signing
//! in (and setting one's own password after a one-time one, as every technician an admin
//! created and the demo admin must), a PIN session, polling a session.

use deskline_api::{ChangePassword, CreateSession, LoginRequest, LoginResponse, RemoteRequest, SessionView};
use deskline_console::client::Client;
use deskline_protocol::session::SessionKind;
use std::time::Duration;

/// What a benchmark's technician sets after a one-time password (strong enough for the relay).
pub const OWN_PASSWORD: &str = "lantern orbit seven meadow";

/// A signed-in technician.
pub struct SignedIn {
    /// Their API client.
    pub client: Client,
    /// Their bearer token (for viewers).
    pub token: String,
    /// Their id.
    pub id: i64,
}

/// Signs in to the relay at `server` (certificate pinned by `fingerprint`); after a one-time
/// password, sets [`OWN_PASSWORD`] first.
pub async fn sign_in(server: &str, fingerprint: &str, username: &str, password: &str) -> anyhow::Result<SignedIn> {
    let anonymous = Client::new(server, Some(fingerprint), None)?;
    let request = LoginRequest { username: username.into(), password: password.into(), code: None };
    let mut login: LoginResponse = anonymous.post("/login", &request).await?;
    if login.technician.must_change_password {
        let one_time = Client::new(server, Some(fingerprint), Some(login.token))?;
        let change = ChangePassword { current_password: password.into(), new_password: OWN_PASSWORD.into() };
        login = one_time.post("/me/password", &change).await?;
    }
    let client = Client::new(server, Some(fingerprint), Some(login.token.clone()))?;
    Ok(SignedIn { client, token: login.token, id: login.technician.id })
}

/// A new PIN session in the default channel, assigned to `client`'s technician.
pub async fn pin_session(client: &Client) -> anyhow::Result<SessionView> {
    Ok(client.post("/channels/1/sessions", &CreateSession { kind: SessionKind::Pin, name: None }).await?)
}

/// Asks the session's end user for view and control.
pub async fn ask_consent(client: &Client, id: i64) -> anyhow::Result<()> {
    let _: SessionView = client.post(&format!("/sessions/{id}/remote"), &RemoteRequest::default()).await?;
    Ok(())
}

/// Polls the session every `pause`, at most `tries` times, until `check` holds; whether it did.
pub async fn wait_until(client: &Client, id: i64, tries: usize, pause: Duration, check: impl Fn(&SessionView) -> bool) -> anyhow::Result<bool> {
    for _ in 0..tries {
        let session: SessionView = client.get(&format!("/sessions/{id}")).await?;
        if check(&session) {
            return Ok(true);
        }
        tokio::time::sleep(pause).await;
    }
    Ok(false)
}
