//! A small client of the relay's HTTP API: the request and answer types of `deskline-api` in
//! and out (the relay serves the same types, so the two cannot drift), API errors as typed
//! values.

use deskline_api::ErrorBody;
use deskline_net::tls;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// The relay answered with success but not in the shape this console knows (a relay of
    /// another version, or not a Deskline relay at all).
    #[error("the relay's answer to {path} was not understood: {reason}")]
    Unexpected {
        /// The API path asked.
        path: String,
        /// What did not match.
        reason: String,
    },
}

impl ApiError {
    /// The relay's error code, when it answered with one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the relay answered with an error.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one relay (cloning shares its connection pool).
#[derive(Clone)]
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

    /// The bearer token, if signed in.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `GET path`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// `POST path` without a body (actions such as closing a session or signing out).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(reqwest::Method::POST, path, None::<&()>).await
    }

    /// `PATCH path` with `body` as JSON.
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(reqwest::Method::DELETE, path, None::<&()>).await
    }

    /// `GET path` saved into `file` (created; replaced if it exists), with progress on `bar`;
    /// returns the bytes written. A failed download removes what it wrote.
    pub async fn download(&self, path: &str, file: &std::path::Path, bar: &indicatif::ProgressBar) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt as _;
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(|e| ApiError::Transport(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(api_error(status, &body).into());
        }
        bar.set_length(response.content_length().unwrap_or(0));
        let result = async {
            // Buffered: one write to the file per megabyte, not per network chunk.
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(file).await?);
            let mut written = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(|e| ApiError::Transport(error_chain(&e)))? {
                out.write_all(&chunk).await?;
                written += chunk.len() as u64;
                bar.set_position(written);
            }
            out.flush().await?;
            anyhow::Ok(written)
        }
        .await;
        bar.finish_and_clear();
        if result.is_err() {
            let _ = tokio::fs::remove_file(file).await;
        }
        result
    }

    /// Sends one request. An answer without a body (`204 No Content`) is read as JSON `null`,
    /// so it is `()` (or `None`) to a caller that expects nothing.
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Transport(error_chain(&e)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ApiError::Transport(error_chain(&e)))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let json: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { &bytes };
        serde_json::from_slice(json).map_err(|e| ApiError::Unexpected { path: path.to_owned(), reason: e.to_string() })
    }
}

/// The relay's error answer (`ErrorBody`); a body that is not one (a proxy's error page) keeps
/// the status and says so.
fn api_error(status: reqwest::StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ApiError::Api { status: status.as_u16(), code: error.code, message: error.message },
        Err(_) => ApiError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: format!("the relay gave no reason ({})", status.canonical_reason().unwrap_or("error")),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_read_from_the_shared_error_body() {
        let body = br#"{"error":{"code":"password_change_required","message":"set your own password first"}}"#;
        let e = api_error(reqwest::StatusCode::FORBIDDEN, body);
        assert_eq!((e.status(), e.code()), (Some(403), Some("password_change_required")));
        assert_eq!(e.to_string(), "set your own password first (password_change_required, HTTP 403)");
        let proxy = api_error(reqwest::StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(proxy.to_string(), "the relay gave no reason (Bad Gateway) (unknown, HTTP 502)");
    }
}
