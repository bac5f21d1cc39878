//! Extractors that turn every bad input into the API's JSON error shape.

use super::AppState;
use crate::error::Error;
use crate::limits::MAX_REQUEST_BODY_BYTES;
use crate::store::TechnicianRow;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The signed-in technician, from `Authorization: Bearer TOKEN`.
pub struct Authed(pub TechnicianRow);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(Error::Unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized("malformed Authorization header"))?;
        state.desk.authenticate(token).await.map(Authed)
    }
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

/// Parses JSON, naming the path of the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad("invalid_json", "the request needs a JSON body"));
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
