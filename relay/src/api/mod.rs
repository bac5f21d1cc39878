//! The HTTP API under `/api/v1` (DESIGN §5): a `Router` built from the app state, so tests
//! drive it with `oneshot` and the server only binds it.
//!
//! Every route needs a bearer token except [`PUBLIC_ROUTES`]. Errors are always
//! `{"error": {"code": "...", "message": "..."}}`.

mod extract;
mod routes;
mod web;

pub use web::CONTENT_SECURITY_POLICY;

pub use extract::{ApiJson, ApiPath, Authed, BearerToken, ClientAddr};

use crate::desk::Desk;
use crate::downloads::SupportApps;
use crate::error::Error;
use crate::transport::Transport;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

/// Routes reachable without a token: `(method, path)` as in the OpenAPI document.
/// The web console's static files are among them (they carry no data), and an end user's
/// invite page and download (the link's token is the credential).
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/login"),
    ("get", "/healthz"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/"),
    ("get", "/js/{module}"),
    ("get", "/console.css"),
    ("get", "/s/{token}"),
    ("get", "/s/{token}/download"),
    ("get", "/s/{token}/download/{platform}"),
];

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The service desk.
    pub desk: Desk,
    /// The media side, for browsers' WebRTC viewers (absent when only the API runs).
    pub transport: Option<Arc<Transport>>,
    /// The support app builds offered on invite pages (with the session's link appended).
    pub support_apps: Arc<SupportApps>,
    openapi: Arc<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Deskline relay API", description = "Service desk: technicians, channels, support sessions."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The API router and its OpenAPI document, without the media side (browsers cannot view).
pub fn router(desk: Desk) -> Router {
    router_with(desk, None, SupportApps::default())
}

/// The API router with the QUIC transport behind it, so browsers can view sessions over
/// WebRTC, and the support app builds that invite pages offer.
pub fn router_with(desk: Desk, transport: Option<Arc<Transport>>, support_apps: SupportApps) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::routes())
        .split_for_parts();
    let openapi = Arc::new(openapi.to_pretty_json().unwrap_or_default());
    let state = AppState { desk, transport, support_apps: Arc::new(support_apps), openapi };
    let desk = state.desk.clone();
    api.route("/api/v1/openapi.json", axum::routing::get(openapi_json))
        .route("/healthz", axum::routing::get(healthz))
        .route("/", axum::routing::get(web::index))
        .route("/js/{module}", axum::routing::get(web::module))
        .route("/console.css", axum::routing::get(web::style))
        .route("/s/{token}", axum::routing::get(web::invite))
        .route("/s/{token}/download", axum::routing::get(web::download))
        .route("/s/{token}/download/{platform}", axum::routing::get(web::download_for))
        .fallback(not_found)
        .with_state(state)
        .route_layer(axum::middleware::from_fn_with_state(desk, time_request))
        .layer(axum::middleware::from_fn(read_whole_body))
        .layer(axum::middleware::map_response(security_headers))
}

/// For load balancers and monitors: 200 when the relay answers and its database reads, 503
/// otherwise. No token, no data.
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.desk.healthy().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// Times every API request into the latency histogram, by declared route (the live event
/// stream, which lasts as long as the console is open, is left out).
async fn time_request(
    axum::extract::State(desk): axum::extract::State<Desk>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(route) = route.filter(|r| r.starts_with("/api/") && r != "/api/v1/events") {
        let status = match response.status().as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = crate::metrics::RequestLabels { method, route, status };
        desk.metrics().requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }
    response
}

/// Reads every request's whole body before anything answers it. An answer given before the
/// body was read (a refused token, a malformed id) made hyper close the connection after it
/// without saying so (no `Connection: close`), and a client that reused the kept-alive
/// connection lost its next request ("EOF occurred in violation of protocol", found by
/// schemathesis). A body over [`MAX_REQUEST_BODY`], cut off, or slower than
/// [`HTTP_BODY_TIMEOUT`] is answered with an error that closes the connection.
async fn read_whole_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use crate::limits::{HTTP_BODY_TIMEOUT, MAX_REQUEST_BODY};
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        let message = format!("the request body is larger than {} KiB", MAX_REQUEST_BODY / 1024);
        return closing(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &message);
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(HTTP_BODY_TIMEOUT, axum::body::to_bytes(body, MAX_REQUEST_BODY)).await {
        Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(e)) => {
            let message = format!("the request body could not be read (larger than {} KiB, or cut off): {e}", MAX_REQUEST_BODY / 1024);
            closing(StatusCode::BAD_REQUEST, "unreadable_body", &message)
        }
        Err(_) => closing(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the request body did not arrive in time"),
    }
}

/// An error answer after which the connection is closed (what was left of the request unread).
fn closing(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, [(header::CONNECTION, HeaderValue::from_static("close"))], axum::Json(body)).into_response()
}

/// How long browsers keep to HTTPS for this host once told (a year, the usual value).
const HSTS: &str = "max-age=31536000";

/// Headers on every response: no MIME sniffing, no referrer (links carry codes), HTTPS only
/// from now on (browsers ignore it over plain HTTP, which only loopback serves), and nothing
/// stored by caches unless the response says otherwise — API answers carry tokens, PINs and
/// links, invite pages carry the session's code.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The OpenAPI document of every route (public).
async fn openapi_json(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.as_str().to_owned()).into_response()
}

async fn not_found() -> Error {
    Error::NotFound("route")
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Error::Forwarded { body, .. } = self {
            return (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        }
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Error::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::RateLimited { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}
