//! Shared helpers: a desk on a real SQLite file in a temporary directory, and calls through
//! the real router without a socket.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use deskline_protocol::Timestamp;
use deskline_relay::clock::ManualClock;
use deskline_relay::desk::{Desk, NewTechnician};
use deskline_relay::store::{Db, Role};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt as _;

pub mod process;

pub const PASSWORD: &str = "correct horse battery";

/// The password an administrator gives a new technician (one-time: changed at first sign-in).
pub const ONE_TIME: &str = "lantern orbit seven meadow";

/// Where the harness's requests come from, unless a test says otherwise.
pub const CLIENT: &str = "192.0.2.10:40000";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub desk: Desk,
    pub router: Router,
    pub clock: ManualClock,
    pub admin: String,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path()).unwrap();
        let clock = ManualClock::new(Timestamp(1_800_000_000_000));
        let desk = Desk::new(db, Arc::new(clock.clone()), "https://desk.example".into());
        desk.ensure_default_channel_blocking().unwrap();
        let admin = desk
            .create_technician(
                None,
                NewTechnician { username: "admin".into(), display_name: "Ada Admin".into(), password: PASSWORD.into(), role: Role::Admin, one_time: false },
            )
            .await
            .unwrap();
        desk.join_default_channel_blocking(deskline_protocol::TechnicianId(admin.id)).unwrap();
        let router = deskline_relay::api::router(desk.clone());
        let mut h = Harness { dir, desk, router, clock, admin: String::new() };
        h.admin = h.login("admin").await;
        h
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let raw = body.map(|b| b.to_string());
        self.call_raw(method, path, token, raw.as_deref()).await
    }

    pub async fn call_raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        self.call_from(CLIENT, method, path, token, body).await
    }

    /// A request from this client address (as the server sees it).
    pub async fn call_from(&self, from: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        let response = self.response_from(from, method, path, token, body).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, value)
    }

    /// The whole response (headers included) to a request from the default client.
    pub async fn raw_response(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> axum::response::Response {
        self.response_from(CLIENT, method, path, token, body).await
    }

    async fn response_from(&self, from: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> axum::response::Response {
        let from: std::net::SocketAddr = from.parse().unwrap();
        let mut req = Request::builder().method(method).uri(path).extension(axum::extract::ConnectInfo(from));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
        self.router.clone().oneshot(req).await.unwrap()
    }

    pub async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, Some(token), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub async fn login(&self, username: &str) -> String {
        let (status, v) =
            self.call("POST", "/api/v1/login", None, Some(json!({"username": username, "password": PASSWORD}))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Creates a technician (as admin) with the one-time password [`ONE_TIME`], adds them to
    /// `channel`, signs them in and sets their own password ([`PASSWORD`]); returns (id, token).
    pub async fn technician(&self, username: &str, channel: i64) -> (i64, String) {
        let t = self
            .ok("POST", "/api/v1/technicians", &self.admin, Some(json!({"username": username, "password": ONE_TIME, "role": "technician"})))
            .await;
        let id = t["id"].as_i64().unwrap();
        self.ok("POST", &format!("/api/v1/channels/{channel}/members"), &self.admin, Some(json!({"technician_id": id}))).await;
        (id, self.first_sign_in(username, ONE_TIME).await)
    }

    /// Signs in with a one-time password and sets [`PASSWORD`]; returns the new token.
    pub async fn first_sign_in(&self, username: &str, one_time: &str) -> String {
        let (status, v) = self.call("POST", "/api/v1/login", None, Some(json!({"username": username, "password": one_time}))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["technician"]["must_change_password"], true, "{v}");
        let token = v["token"].as_str().unwrap();
        let body = json!({"current_password": one_time, "new_password": PASSWORD});
        let changed = self.ok("POST", "/api/v1/me/password", token, Some(body)).await;
        assert_eq!(changed["technician"]["must_change_password"], false);
        changed["token"].as_str().unwrap().to_owned()
    }

    pub async fn channel(&self, name: &str) -> i64 {
        self.ok("POST", "/api/v1/channels", &self.admin, Some(json!({"name": name}))).await["id"].as_i64().unwrap()
    }
}

pub fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}
