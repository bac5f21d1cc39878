//! What browsers get outside the API.
//!
//! - The web console's static files (the page, its style sheet and its ES modules, one per
//!   view), embedded in the binary (no build step, nothing to deploy beside the relay). They hold no data: everything comes from the API with the
//!   technician's token, so they are public.
//! - The invite page an end user's link opens (`/s/TOKEN`), and the support app downloads it
//!   offers (`/s/TOKEN/download` for the visitor's system, `/s/TOKEN/download/PLATFORM` for
//!   any offered): the relay's support app build with the session's whole link appended
//!   (`deskline_protocol::embed`), so the app joins without any typing.
//!   Only live link sessions have them; anything else gets the same "no longer valid" page,
//!   which tells a guesser nothing (and tokens are 128 random bits).
//!
//! Everything is served with a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline code, no framing).

use super::AppState;
use axum::extract::{Path, State};
use crate::downloads::Platform;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deskline_protocol::{AppCode, LinkToken};
use futures_util::StreamExt as _;

const INDEX: &str = include_str!("../../web/index.html");
/// The console's ES modules, served at `/js/NAME` (a fixed list: nothing else is served from
/// there).
const MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("../../web/js/main.js")),
    ("api.js", include_str!("../../web/js/api.js")),
    ("signin.js", include_str!("../../web/js/signin.js")),
    ("second-factor.js", include_str!("../../web/js/second-factor.js")),
    ("directory.js", include_str!("../../web/js/directory.js")),
    ("lists.js", include_str!("../../web/js/lists.js")),
    ("session.js", include_str!("../../web/js/session.js")),
    ("chat.js", include_str!("../../web/js/chat.js")),
    ("admin.js", include_str!("../../web/js/admin.js")),
    ("create.js", include_str!("../../web/js/create.js")),
    ("events.js", include_str!("../../web/js/events.js")),
    ("viewer.js", include_str!("../../web/js/viewer.js")),
    ("recordings.js", include_str!("../../web/js/recordings.js")),
    ("files.js", include_str!("../../web/js/files.js")),
];
const STYLE: &str = include_str!("../../web/console.css");

/// The policy every console file is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; media-src blob:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn file(body: impl IntoResponse, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // Small files: always revalidated, so an upgraded relay serves its own console.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

pub(super) async fn index() -> Response {
    file(INDEX, "text/html; charset=utf-8")
}

pub(super) async fn module(Path(name): Path<String>) -> Response {
    match MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => file(*text, "text/javascript; charset=utf-8"),
        None => super::not_found().await.into_response(),
    }
}

pub(super) async fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8")
}

/// The session behind an invite link's token and its whole link, if it is a live link session.
async fn invited(state: &AppState, token: &str) -> Option<String> {
    let token = token.parse::<LinkToken>().ok()?;
    let row = state.desk.find_by_code(&AppCode::Link(token)).await.ok()??;
    crate::views::session(&row, &state.desk.links()).link
}

/// Escapes text for HTML. (Hand-written: five characters, the only dynamic text is the
/// operator's organisation name and the relay's own link; a template engine would be all
/// weight for this one page.)
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=stylesheet href=/console.css></head>\
         <body><header><span class=brand>Deskline</span></header><main class=invite>{body}</main></body></html>",
        title = escape(title),
    );
    let mut response = (status, file(html, "text/html; charset=utf-8")).into_response();
    // Invite pages show the session's link: kept by no cache.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn no_longer_valid() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Invitation not valid",
        "<h1>This invitation is not valid any more</h1>\
         <p>The support session it was for has ended, expired, or never existed. Ask your \
         technician for a new link or for a PIN.</p>",
    )
}

/// The browser's User-Agent, if it sent one.
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok())
}

pub(super) async fn invite(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let Some(link) = invited(&state, &token).await else { return no_longer_valid() };
    let organisation = state.desk.organisation();
    let org = escape(&organisation);
    let token = escape(&token);
    // The visitor's system first; the others listed, for someone forwarding the link.
    let download = match state.support_apps.best_for(user_agent(&headers)) {
        Some(first) => {
            let others: Vec<String> = state
                .support_apps
                .platforms()
                .filter(|p| *p != first)
                .map(|p| format!("<a href=\"/s/{token}/download/{slug}\" download={name}>{system}</a>", slug = p.slug(), name = p.download_name(), system = p.name()))
                .collect();
            let others = if others.is_empty() { String::new() } else { format!(" <span class=muted>Other systems: {}</span>", others.join(" · ")) };
            format!(
                "<li><a class=button href=\"/s/{token}/download\" download={name}>Download the support app for {system}</a>{others}</li>\
                 <li>{run} It connects to this session by itself.</li>",
                name = first.download_name(),
                system = first.name(),
                run = first.how_to_run(),
            )
        }
        None => "<li>Get the Deskline support app from your technician.</li>".to_owned(),
    };
    let body = format!(
        "<h1>Remote support from {org}</h1>\
         <p>{org} invited you to a remote support session.</p>\
         <ol>{download}\
         <li>A window asks you before anyone sees your screen. Nothing is shared until you \
         allow it, and you can stop sharing at any moment.</li></ol>\
         <p class=muted>Already have the support app? Start it with this link: \
         <code class=code>deskline-agent --link '{link}'</code></p>",
        link = escape(&link),
    );
    page(StatusCode::OK, &format!("Remote support from {organisation}"), &body)
}

/// The build for the visitor's system (by User-Agent), else the first one offered.
pub(super) async fn download(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let platform = state.support_apps.best_for(user_agent(&headers));
    serve_download(&state, &token, platform).await
}

/// The build for the platform the path names.
pub(super) async fn download_for(State(state): State<AppState>, Path((token, platform)): Path<(String, String)>) -> Response {
    serve_download(&state, &token, Platform::from_slug(&platform)).await
}

async fn serve_download(state: &AppState, token: &str, platform: Option<Platform>) -> Response {
    let Some(link) = invited(state, token).await else { return no_longer_valid() };
    let Some((platform, binary)) = platform.and_then(|p| state.support_apps.path_for(p).map(|path| (p, path))) else {
        return no_longer_valid();
    };
    let trailer = match deskline_protocol::embed::link_trailer(&link) {
        Ok(trailer) => trailer,
        Err(e) => {
            tracing::error!(error = %e, "cannot embed the link");
            return page(StatusCode::INTERNAL_SERVER_ERROR, "Download unavailable", "<h1>The download is not available</h1>");
        }
    };
    // Opened per download, so an upgraded binary is served without a restart, and streamed
    // from the file: a download costs a read buffer, not the whole executable in memory.
    let opened = async {
        let file = tokio::fs::File::open(binary).await?;
        let len = file.metadata().await?.len();
        Ok::<_, std::io::Error>((file, len))
    };
    let (app, len) = match opened.await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::error!(path = %binary.display(), error = %e, "cannot read the support app to offer");
            return page(StatusCode::SERVICE_UNAVAILABLE, "Download unavailable", "<h1>The download is not available right now</h1><p>Please try again later, or ask your technician.</p>");
        }
    };
    let length = len + trailer.len() as u64;
    let stream = tokio_util::io::ReaderStream::new(app)
        .chain(futures_util::stream::once(async move { Ok(bytes::Bytes::from(trailer)) }));
    let disposition = format!("attachment; filename=\"{}\"", platform.download_name());
    let mut response = file(axum::body::Body::from_stream(stream), "application/octet-stream");
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    // The file carries the session's code: no caching anywhere.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
