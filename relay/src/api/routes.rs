//! The handlers. Each is thin: parse, call the desk, shape the answer.

use super::extract::parse_json;
use super::{ApiJson, ApiPath, AppState, Authed, BearerToken, ClientAddr};
use crate::desk::{ChannelPatch, NewTechnician};
use crate::error::Error;
use crate::store::Role;
use crate::views::{self, AuditEventView, ChannelView, ChatMessageView, LiveEvent, RelayInfo, SessionView, Settings, TechnicianView};
use deskline_api::{
    ChangePassword, CreateChannel, CreateSession, CreateTechnician, DisableSecondFactor, LoginRequest, LoginResponse,
    RecoveryCodes, RemoteRequest, SecondFactorCode, SecondFactorConfirmed, SecondFactorEnrolment, SessionDescription,
    NewChatMessage, RecordingLogLine, RecordingView, SettingsPatch, StartSecondFactor, TechnicianRef, TransferRequest, UpdateChannel, UpdateTechnician,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use deskline_protocol::session::{Action, Actor};
use deskline_protocol::{Capabilities, ChannelId, SessionId, TechnicianId};
use futures_util::Stream;
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(start_second_factor))
        .routes(routes!(confirm_second_factor))
        .routes(routes!(disable_second_factor))
        .routes(routes!(new_recovery_codes))
        .routes(routes!(list_technicians, create_technician))
        .routes(routes!(update_technician))
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(update_channel))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(channel_sessions, create_session))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(assign))
        .routes(routes!(transfer))
        .routes(routes!(invite))
        .routes(routes!(uninvite))
        .routes(routes!(release))
        .routes(routes!(close))
        .routes(routes!(remote))
        .routes(routes!(session_events))
        .routes(routes!(session_recordings))
        .routes(routes!(recording_video))
        .routes(routes!(recording_log))
        .routes(routes!(live_events))
        .routes(routes!(chat_history, post_chat))
        .routes(routes!(relay_info))
        .routes(routes!(session_relay))
        .routes(routes!(webrtc_offer))
}

type ApiResult<T> = Result<Json<T>, Error>;

/// Sign in with username and password (and the second factor's code, for an account with
/// one: `401 second_factor_required` asks for it); returns a bearer token.
#[utoipa::path(post, path = "/login", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 400), (status = 401), (status = 429)))]
async fn login(State(state): State<AppState>, ClientAddr(from): ClientAddr, ApiJson(req): ApiJson<LoginRequest>) -> ApiResult<LoginResponse> {
    let (token, technician) = state.desk.login(req.username, req.password, req.code, from).await?;
    Ok(Json(LoginResponse { token, technician }))
}

/// Sign out: the token dies at once.
#[utoipa::path(post, path = "/logout", responses((status = 204), (status = 401)))]
async fn logout(State(state): State<AppState>, BearerToken(token): BearerToken) -> Result<StatusCode, Error> {
    state.desk.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in technician.
#[utoipa::path(get, path = "/me", responses((status = 200, body = TechnicianView), (status = 401)))]
async fn me(State(state): State<AppState>, Authed(me): Authed) -> ApiResult<TechnicianView> {
    Ok(Json(state.desk.technician_view(&me)))
}

/// Set one's own password (required after signing in with a one-time password). Every token
/// of the account is revoked; the answer carries the new one.
#[utoipa::path(post, path = "/me/password", request_body = ChangePassword,
    responses((status = 200, body = LoginResponse), (status = 400), (status = 401), (status = 429)))]
async fn change_password(
    State(state): State<AppState>,
    Authed(me): Authed,
    ClientAddr(from): ClientAddr,
    ApiJson(req): ApiJson<ChangePassword>,
) -> ApiResult<LoginResponse> {
    let (token, technician) = state.desk.change_password(&me, req.current_password, req.new_password, from).await?;
    Ok(Json(LoginResponse { token, technician }))
}

/// Start setting up a second factor (the account's password proves who asks): a new secret
/// for an authenticator app, as a QR code and as text. Signing in changes only once
/// `POST /me/second-factor/confirm` has a code from the app.
#[utoipa::path(post, path = "/me/second-factor", request_body = StartSecondFactor,
    responses((status = 200, body = SecondFactorEnrolment), (status = 400), (status = 401), (status = 409), (status = 429)))]
async fn start_second_factor(
    State(state): State<AppState>,
    Authed(me): Authed,
    ClientAddr(from): ClientAddr,
    ApiJson(req): ApiJson<StartSecondFactor>,
) -> ApiResult<SecondFactorEnrolment> {
    Ok(Json(state.desk.start_second_factor(&me, req.password, from).await?))
}

/// Turn the second factor on with the first code the app shows. Every token of the account is
/// revoked; the answer carries the new one and the recovery codes (shown this once).
#[utoipa::path(post, path = "/me/second-factor/confirm", request_body = SecondFactorCode,
    responses((status = 200, body = SecondFactorConfirmed), (status = 400), (status = 401), (status = 409), (status = 429)))]
async fn confirm_second_factor(
    State(state): State<AppState>,
    Authed(me): Authed,
    ClientAddr(from): ClientAddr,
    ApiJson(req): ApiJson<SecondFactorCode>,
) -> ApiResult<SecondFactorConfirmed> {
    Ok(Json(state.desk.confirm_second_factor(&me, req.code, from).await?))
}

/// Turn one's second factor off (password and a code); refused while an administrator
/// requires one.
#[utoipa::path(post, path = "/me/second-factor/disable", request_body = DisableSecondFactor,
    responses((status = 200, body = TechnicianView), (status = 400), (status = 401), (status = 409), (status = 429)))]
async fn disable_second_factor(
    State(state): State<AppState>,
    Authed(me): Authed,
    ClientAddr(from): ClientAddr,
    ApiJson(req): ApiJson<DisableSecondFactor>,
) -> ApiResult<TechnicianView> {
    Ok(Json(state.desk.disable_second_factor(&me, req.password, req.code, from).await?))
}

/// New recovery codes (a current code from the app proves it is at hand); the earlier ones
/// stop working.
#[utoipa::path(post, path = "/me/second-factor/recovery-codes", request_body = SecondFactorCode,
    responses((status = 200, body = RecoveryCodes), (status = 400), (status = 401), (status = 409), (status = 429)))]
async fn new_recovery_codes(
    State(state): State<AppState>,
    Authed(me): Authed,
    ClientAddr(from): ClientAddr,
    ApiJson(req): ApiJson<SecondFactorCode>,
) -> ApiResult<RecoveryCodes> {
    Ok(Json(RecoveryCodes { recovery_codes: state.desk.new_recovery_codes(&me, req.code, from).await? }))
}

/// Every technician.
#[utoipa::path(get, path = "/technicians", responses((status = 200, body = [TechnicianView]), (status = 401)))]
async fn list_technicians(State(state): State<AppState>, Authed(_me): Authed) -> ApiResult<Vec<TechnicianView>> {
    Ok(Json(state.desk.technicians().await?))
}

/// Create a technician (admins).
#[utoipa::path(post, path = "/technicians", request_body = CreateTechnician,
    responses((status = 201, body = TechnicianView), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_technician(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiJson(req): ApiJson<CreateTechnician>,
) -> Result<(StatusCode, Json<TechnicianView>), Error> {
    // The administrator knows this password: the technician sets their own at the first sign-in.
    let new = NewTechnician { username: req.username, display_name: req.display_name, password: req.password, role: req.role, one_time: true };
    Ok((StatusCode::CREATED, Json(state.desk.create_technician(Some(&me), new).await?)))
}

/// Change a technician's account (admins): name, role, a one-time password (reset), disabled.
/// Disabling revokes their tokens at once and takes them off every live session.
#[utoipa::path(patch, path = "/technicians/{id}", params(("id" = i64, Path)), request_body = UpdateTechnician,
    responses((status = 200, body = TechnicianView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn update_technician(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UpdateTechnician>,
) -> ApiResult<TechnicianView> {
    Ok(Json(state.desk.update_technician(&me, TechnicianId(id), req).await?))
}

/// The relay-wide settings (the organisation named to end users).
#[utoipa::path(get, path = "/settings", responses((status = 200, body = Settings), (status = 401)))]
async fn get_settings(State(state): State<AppState>, Authed(_me): Authed) -> ApiResult<Settings> {
    Ok(Json(state.desk.settings()))
}

/// Change the relay-wide settings (admins).
#[utoipa::path(patch, path = "/settings", request_body = SettingsPatch,
    responses((status = 200, body = Settings), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn update_settings(State(state): State<AppState>, Authed(me): Authed, ApiJson(req): ApiJson<SettingsPatch>) -> ApiResult<Settings> {
    Ok(Json(state.desk.update_settings(&me, req).await?))
}

/// The channels the technician may see (all, for admins).
#[utoipa::path(get, path = "/channels", responses((status = 200, body = [ChannelView]), (status = 401)))]
async fn list_channels(State(state): State<AppState>, Authed(me): Authed) -> ApiResult<Vec<ChannelView>> {
    Ok(Json(state.desk.channels(&me).await?))
}

/// Create a channel (admins).
#[utoipa::path(post, path = "/channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_channel(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiJson(req): ApiJson<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelView>), Error> {
    let settings = ChannelPatch {
        name: None,
        session_expiry_secs: req.session_expiry_secs,
        consent_timeout_secs: req.consent_timeout_secs,
        max_file_bytes: req.max_file_bytes,
        record_sessions: req.record_sessions,
        recording_retention_days: req.recording_retention_days,
    };
    let view = state.desk.create_channel(&me, req.name, settings).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Change a channel's settings (admins).
#[utoipa::path(patch, path = "/channels/{id}", params(("id" = i64, Path)), request_body = UpdateChannel,
    responses((status = 200, body = ChannelView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn update_channel(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UpdateChannel>,
) -> ApiResult<ChannelView> {
    let patch = ChannelPatch {
        name: req.name,
        session_expiry_secs: req.session_expiry_secs,
        consent_timeout_secs: req.consent_timeout_secs,
        max_file_bytes: req.max_file_bytes,
        record_sessions: req.record_sessions,
        recording_retention_days: req.recording_retention_days,
    };
    Ok(Json(state.desk.update_channel(&me, ChannelId(id), patch).await?))
}

/// Add a member to a channel (admins).
#[utoipa::path(post, path = "/channels/{id}/members", params(("id" = i64, Path)), request_body = TechnicianRef,
    responses((status = 200, body = ChannelView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn add_member(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TechnicianRef>,
) -> ApiResult<ChannelView> {
    Ok(Json(state.desk.add_member(&me, ChannelId(id), TechnicianId(req.technician_id)).await?))
}

/// Remove a member from a channel (admins): they leave its live sessions (owned ones go to
/// its queue).
#[utoipa::path(delete, path = "/channels/{id}/members/{technician_id}", params(("id" = i64, Path), ("technician_id" = i64, Path)),
    responses((status = 200, body = ChannelView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn remove_member(State(state): State<AppState>, Authed(me): Authed, ApiPath((id, technician)): ApiPath<(i64, i64)>) -> ApiResult<ChannelView> {
    Ok(Json(state.desk.remove_member(&me, ChannelId(id), TechnicianId(technician)).await?))
}

/// The sessions of a channel.
#[utoipa::path(get, path = "/channels/{id}/sessions", params(("id" = i64, Path)),
    responses((status = 200, body = [SessionView]), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn channel_sessions(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<Vec<SessionView>> {
    Ok(Json(state.desk.channel_sessions(&me, ChannelId(id)).await?))
}

/// Create a support session in a channel; the creator is assigned.
#[utoipa::path(post, path = "/channels/{id}/sessions", params(("id" = i64, Path)), request_body = CreateSession,
    responses((status = 201, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn create_session(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionView>), Error> {
    let view = state.desk.create_session(&me, ChannelId(id), req.kind, req.name).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    /// `home` (the default): sessions assigned to or shared with the signed-in technician;
    /// `deleted`: deleted sessions of one's channels (all, for admins), to read their history.
    scope: Option<String>,
}

/// The signed-in technician's Home, or deleted sessions.
#[utoipa::path(get, path = "/sessions", params(SessionsQuery),
    responses((status = 200, body = [SessionView]), (status = 400), (status = 401)))]
async fn list_sessions(
    State(state): State<AppState>,
    Authed(me): Authed,
    query: Result<Query<SessionsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<SessionView>> {
    let Query(query) = query.map_err(|e| Error::bad("invalid_query", e.body_text()))?;
    match query.scope.as_deref() {
        None | Some("home") => Ok(Json(state.desk.home(&me).await?)),
        Some("deleted") => Ok(Json(state.desk.deleted_sessions(&me).await?)),
        Some(other) => Err(Error::bad("invalid_query", format!("scope: unknown scope {other:?} (expected home or deleted)"))),
    }
}

/// One session.
#[utoipa::path(get, path = "/sessions/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 404)))]
async fn get_session(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<SessionView> {
    Ok(Json(state.desk.session(&me, SessionId(id)).await?))
}

/// Delete a session from its channel's lists (a live one is closed first; history is kept).
#[utoipa::path(delete, path = "/sessions/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn delete_session(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<SessionView> {
    Ok(Json(state.desk.act(&me, SessionId(id), Action::Delete).await?))
}

/// Assign the session to a technician of its channel.
#[utoipa::path(post, path = "/sessions/{id}/assign", params(("id" = i64, Path)), request_body = TechnicianRef,
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn assign(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TechnicianRef>,
) -> ApiResult<SessionView> {
    let action = Action::Assign { technician: TechnicianId(req.technician_id) };
    Ok(Json(state.desk.act(&me, SessionId(id), action).await?))
}

/// Transfer to another technician or to another channel.
#[utoipa::path(post, path = "/sessions/{id}/transfer", params(("id" = i64, Path)), request_body = TransferRequest,
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn transfer(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<SessionView> {
    let action = match (req.technician_id, req.channel_id) {
        (Some(t), None) => Action::TransferToTechnician { technician: TechnicianId(t) },
        (None, Some(c)) => Action::TransferToChannel { channel: ChannelId(c) },
        _ => return Err(Error::bad("invalid_json", "give exactly one of technician_id and channel_id")),
    };
    Ok(Json(state.desk.act(&me, SessionId(id), action).await?))
}

/// Invite a collaborating technician (three technicians per session at most).
#[utoipa::path(post, path = "/sessions/{id}/invite", params(("id" = i64, Path)), request_body = TechnicianRef,
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn invite(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TechnicianRef>,
) -> ApiResult<SessionView> {
    let action = Action::Invite { technician: TechnicianId(req.technician_id) };
    Ok(Json(state.desk.act(&me, SessionId(id), action).await?))
}

/// Take an invited technician off the session (the owner or an admin), or leave it (the
/// invited technician). What the end user allowed them ends, and their viewers are disconnected.
#[utoipa::path(delete, path = "/sessions/{id}/invited/{technician_id}", params(("id" = i64, Path), ("technician_id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn uninvite(State(state): State<AppState>, Authed(me): Authed, ApiPath((id, technician)): ApiPath<(i64, i64)>) -> ApiResult<SessionView> {
    let action = Action::Uninvite { technician: TechnicianId(technician) };
    Ok(Json(state.desk.act(&me, SessionId(id), action).await?))
}

/// Unassign the session: it queues if the app is connected.
#[utoipa::path(post, path = "/sessions/{id}/release", params(("id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn release(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<SessionView> {
    Ok(Json(state.desk.act(&me, SessionId(id), Action::Release).await?))
}

/// Close the session: ends any remote connection and invalidates its code.
#[utoipa::path(post, path = "/sessions/{id}/close", params(("id" = i64, Path)),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn close(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<SessionView> {
    Ok(Json(state.desk.act(&me, SessionId(id), Action::Close).await?))
}

/// Start a remote session: asks the support app for consent.
#[utoipa::path(post, path = "/sessions/{id}/remote", params(("id" = i64, Path)), request_body(content = RemoteRequest, description = "optional"),
    responses((status = 200, body = SessionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn remote(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>, body: Bytes) -> ApiResult<SessionView> {
    let requested = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<RemoteRequest>(&body)?.capabilities
    };
    let capabilities = match requested.as_deref() {
        None => Capabilities::VIEW_AND_CONTROL,
        Some(names) => names.parse::<Capabilities>().map_err(|e| Error::bad("invalid_json", format!("capabilities: {e}")))?,
    };
    if capabilities.is_empty() {
        return Err(Error::bad("invalid_json", "capabilities: ask for at least view"));
    }
    Ok(Json(state.desk.start_remote(&me, SessionId(id), capabilities).await?))
}

/// The session's audit trail, oldest first.
#[utoipa::path(get, path = "/sessions/{id}/events", params(("id" = i64, Path)),
    responses((status = 200, body = [AuditEventView]), (status = 400), (status = 401), (status = 404)))]
async fn session_events(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<Vec<AuditEventView>> {
    Ok(Json(state.desk.session_events(&me, SessionId(id)).await?))
}

/// The session's recordings, oldest first (for the channel's members and admins).
#[utoipa::path(get, path = "/sessions/{id}/recordings", params(("id" = i64, Path)),
    responses((status = 200, body = [RecordingView]), (status = 400), (status = 401), (status = 404)))]
async fn session_recordings(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<Vec<RecordingView>> {
    Ok(Json(state.desk.recordings(&me, SessionId(id)).await?))
}

/// Several relay nodes: the node whose data directory holds recording `id`'s files, when that is
/// another (and this request was not passed here by a node already).
async fn recording_elsewhere(state: &AppState, headers: &axum::http::HeaderMap, id: i64) -> Result<Option<crate::store::NodeRow>, Error> {
    if headers.contains_key(crate::nodes::FORWARDED) {
        return Ok(None);
    }
    state.desk.recording_node_of(id).await
}

/// A recording's video: fragmented MP4 of the app's H.264 as it came, which browsers play.
/// Every fetch is audited.
#[utoipa::path(get, path = "/recordings/{id}/video", params(("id" = i64, Path)),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>), (status = 400), (status = 401), (status = 404)))]
async fn recording_video(
    State(state): State<AppState>,
    Authed(me): Authed,
    BearerToken(token): BearerToken,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::response::Response, Error> {
    if let Some(node) = recording_elsewhere(&state, &headers, id).await? {
        return crate::nodes::forward_get(&node, &token, &format!("/recordings/{id}/video")).await;
    }
    let (row, file) = state.desk.open_recording(&me, id).await?;
    let length = file.metadata().await.map(|m| m.len()).map_err(|e| Error::Internal(format!("a recording's size: {e}")))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let headers = [
        (axum::http::header::CONTENT_TYPE, "video/mp4".to_owned()),
        (axum::http::header::CONTENT_LENGTH, length.to_string()),
        (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"deskline-session-{}-recording-{id}.mp4\"", row.session)),
    ];
    Ok((headers, body).into_response())
}

/// A recording's timed log: consent, control, input, chat and clipboard, at their time in
/// the video.
#[utoipa::path(get, path = "/recordings/{id}/log", params(("id" = i64, Path)),
    responses((status = 200, body = [RecordingLogLine]), (status = 400), (status = 401), (status = 404)))]
async fn recording_log(
    State(state): State<AppState>,
    Authed(me): Authed,
    BearerToken(token): BearerToken,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::response::Response, Error> {
    if let Some(node) = recording_elsewhere(&state, &headers, id).await? {
        return crate::nodes::forward_get(&node, &token, &format!("/recordings/{id}/log")).await;
    }
    Ok(Json(state.desk.recording_log(&me, id).await?).into_response())
}

/// The session's chat, oldest first (kept with its history, also after it closed).
#[utoipa::path(get, path = "/sessions/{id}/chat", params(("id" = i64, Path)),
    responses((status = 200, body = [ChatMessageView]), (status = 400), (status = 401), (status = 404)))]
async fn chat_history(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<Vec<ChatMessageView>> {
    Ok(Json(state.desk.chat_history(&me, SessionId(id)).await?))
}

/// Writes to the end user and the other technicians on the session: only a technician on it,
/// only while the support app is connected (before any consent too: a chat line shows nothing
/// of the end user's screen). At most 10 lines at once, then one a second (429 beyond).
#[utoipa::path(post, path = "/sessions/{id}/chat", params(("id" = i64, Path)), request_body = NewChatMessage,
    responses((status = 200, body = ChatMessageView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 429)))]
async fn post_chat(
    State(state): State<AppState>,
    Authed(me): Authed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(new): ApiJson<NewChatMessage>,
) -> ApiResult<ChatMessageView> {
    let (from, id) = (Actor::Technician(me.id), SessionId(id));
    let line = match &state.transport {
        Some(transport) => transport.chat(from, id, new.text).await?,
        None => state.desk.chat(from, id, new.text).await?,
    };
    Ok(Json(views::chat_message(id, line.at, &from, &me.display_name, &line.text)))
}

/// Live updates (Server-Sent Events): one `LiveEvent` JSON per change of a session the
/// technician may see.
#[utoipa::path(get, path = "/events", responses((status = 200, content_type = "text/event-stream", body = LiveEvent), (status = 401)))]
async fn live_events(State(state): State<AppState>, Authed(me): Authed) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut events = state.desk.subscribe();
    let desk = state.desk.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    tokio::spawn(async move {
        // Membership is only ever added, so a channel once seen as ours stays ours.
        let mut ours: HashSet<i64> = HashSet::new();
        // Once for the whole stream, not per event.
        let stopped = desk.stopped();
        tokio::pin!(stopped);
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                () = tx.closed() => return,
                () = &mut stopped => return,
            };
            let live = match received {
                // Every console reloads (another relay node's notices were interrupted).
                Ok(event) if matches!(event.live, LiveEvent::Resync) => LiveEvent::Resync,
                Ok(event) => {
                    let mut visible = me.role == Role::Admin || event.technicians.contains(&me.id);
                    for &c in &event.channels {
                        if visible {
                            break;
                        }
                        if ours.contains(&c) || desk.works_in(me.id, ChannelId(c)).await.unwrap_or(false) {
                            ours.insert(c);
                            visible = true;
                        }
                    }
                    if !visible {
                        continue;
                    }
                    event.live
                }
                Err(RecvError::Lagged(_)) => LiveEvent::Resync,
                Err(RecvError::Closed) => return,
            };
            let Ok(data) = serde_json::to_string(&live) else { continue };
            if tx.send(Ok(Event::default().data(data))).await.is_err() {
                return;
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

/// Where native viewers reach this relay over QUIC, and the certificate to pin.
#[utoipa::path(get, path = "/relay", responses((status = 200, body = RelayInfo), (status = 401), (status = 404)))]
async fn relay_info(State(state): State<AppState>, Authed(_me): Authed) -> ApiResult<RelayInfo> {
    state.desk.relay_info().map(Json).ok_or(Error::NotFound("QUIC endpoint"))
}

/// Where native viewers reach this session over QUIC, and the certificate to pin: the relay
/// node its support app is connected to when several nodes share one database (this node
/// otherwise, as `/relay`).
#[utoipa::path(get, path = "/sessions/{id}/relay", params(("id" = i64, Path)),
    responses((status = 200, body = RelayInfo), (status = 400), (status = 401), (status = 404)))]
async fn session_relay(State(state): State<AppState>, Authed(me): Authed, ApiPath(id): ApiPath<i64>) -> ApiResult<RelayInfo> {
    Ok(Json(state.desk.session_relay(&me, SessionId(id)).await?))
}

/// A WebRTC session description (SDP).
/// View (and control) the session in a browser: the browser's WebRTC offer in, with its ICE
/// candidates gathered; the relay's answer out. Video arrives as an H.264 track; a data
/// channel the browser opened carries the viewer's control messages as JSON. The same rules
/// as for native viewers apply: technicians on the session only, frames only with the end
/// user's consent to view, input only from the controlling technician with consent to control.
#[utoipa::path(post, path = "/sessions/{id}/webrtc", params(("id" = i64, Path)), request_body = SessionDescription,
    responses((status = 200, body = SessionDescription), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn webrtc_offer(
    State(state): State<AppState>,
    Authed(me): Authed,
    BearerToken(token): BearerToken,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(offer): ApiJson<SessionDescription>,
) -> ApiResult<SessionDescription> {
    // Several relay nodes: the session's app is connected to another node, which serves its
    // viewers; the offer goes there (once: a node passed an offer answers it itself).
    if !headers.contains_key(crate::nodes::FORWARDED)
        && let Some(node) = state.desk.media_node_of(SessionId(id)).await?
    {
        return Ok(Json(crate::nodes::forward_offer(&node, &token, id, &offer).await?));
    }
    let transport = state.transport.as_ref().ok_or(Error::NotFound("WebRTC gateway"))?;
    let sdp = transport.browser_offer(me.id, SessionId(id), offer.sdp).await?;
    Ok(Json(SessionDescription { sdp }))
}
