//! A small client of the relay's HTTP API: JSON in and out, API errors as typed values.

use deskline_net::tls;
use serde_json::Value;

/// What went wrong talking to the relay.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The relay answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Human-readable message.
        message: String,
    },
    /// The relay could not be reached, or TLS failed.
    #[error("cannot reach the relay: {0}")]
    Transport(String),
}

/// A client of one relay.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `server` (`https://host:port`), pinning `pin_cert` if given.
    pub fn new(server: &str, pin_cert: Option<&str>, token: Option<String>) -> anyhow::Result<Client> {
        let server = server.trim_end_matches('/');
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            anyhow::bail!("the server URL must start with https:// (got {server:?})");
        }
        let fingerprint = pin_cert.map(tls::parse_fingerprint).transpose()?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(fingerprint))
            .build()?;
        Ok(Client { http, base: format!("{server}/api/v1"), token })
    }

    /// Calls the API; `Ok` with the JSON body on success.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| ApiError::Transport(e.to_string()))?;
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ApiError::Transport(e.to_string()))?;
        let value: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let error = &value["error"];
        Err(ApiError::Api {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().unwrap_or("the relay gave no reason").to_owned(),
        })
    }

    /// The bearer token, if signed in.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body)).await
    }
}

/// The error with its causes, so "certificate not trusted" is not hidden behind "error sending
/// request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
