//! Extractors that turn every bad input into the API's JSON error shape.

use super::AppState;
use crate::error::Error;
use crate::limits::MAX_REQUEST_BODY_BYTES;
use crate::store::TechnicianRow;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The signed-in technician, from `Authorization: Bearer TOKEN`. A technician whose password
/// was set by someone else reaches only the routes that let them set their own; then, if an
/// administrator requires a second factor and they have none, only those that set it up.
pub struct Authed(pub TechnicianRow);

/// The routes a technician with a one-time password may use (below `/api/v1`).
const BEFORE_PASSWORD_CHANGE: &[&str] = &["/me", "/me/password", "/logout"];
/// The routes a technician without a required second factor may use.
const BEFORE_SECOND_FACTOR: &[&str] = &["/me", "/me/password", "/me/second-factor", "/me/second-factor/confirm", "/logout"];

impl FromRequestParts<AppState> for Authed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let me = state.desk.authenticate(token).await?;
        if let Some(restricted) = state.desk.restriction(&me) {
            let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |u| u.0.path());
            let path = path.strip_prefix("/api/v1").unwrap_or(path);
            let lifts = if matches!(restricted, Error::PasswordChangeRequired) { BEFORE_PASSWORD_CHANGE } else { BEFORE_SECOND_FACTOR };
            if !lifts.contains(&path) {
                return Err(restricted);
            }
        }
        Ok(Authed(me))
    }
}

/// The bearer token itself (for signing out), checked like [`Authed`].
pub struct BearerToken(pub String);

impl FromRequestParts<AppState> for BearerToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Authed::from_request_parts(parts, state).await?;
        Ok(BearerToken(bearer(parts)?.to_owned()))
    }
}

/// The token in `Authorization: Bearer TOKEN`.
fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(Error::Unauthorized("missing bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Error::Unauthorized("malformed Authorization header"))
}

/// The client's address, when the server knows it (always over the network; not when tests
/// call the router directly).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let connected = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientAddr(connected.map(|c| c.0.ip())))
    }
}

/// A JSON body. Unknown fields, wrong types and malformed JSON are 400s naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Error> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_REQUEST_BODY_BYTES)
            .await
            .map_err(|_| Error::bad("body_too_large", format!("the body is larger than {MAX_REQUEST_BODY_BYTES} bytes")))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a request's JSON object, naming the path of the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(Error::bad("invalid_json", "the request needs a JSON body")),
        // Every request body is an object; serde would also read a struct from an array of its
        // fields (`[null, null]` was a valid empty patch — found by schemathesis).
        Some(b'{') => {}
        Some(_) => return Err(Error::bad("invalid_json", "the request body must be a JSON object")),
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
        Error::bad("invalid_json", message)
    })?;
    de.end().map_err(|e| Error::bad("invalid_json", e.to_string()))?;
    Ok(value)
}

/// A path parameter; an unparsable one is a 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| Error::bad("invalid_path", e.body_text()))
    }
}
