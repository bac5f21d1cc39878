// Deskline web console: the technician's service desk in the browser.
//
// Plain JavaScript against the relay's HTTP API (/api/v1), no build step and no framework:
// ES modules the browser loads as they are (one per view; `main.js` wires the page), embedded
// in the relay with the page and its style sheet. The bearer token lives in sessionStorage (this tab
// only). Everything shown is set through textContent, never parsed as HTML. Live updates come
// from GET /api/v1/events (Server-Sent Events), read with fetch so that the token travels in
// the Authorization header (EventSource cannot send one) and never in a URL.

import { signOut } from "./signin.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  token: sessionStorage.getItem("deskline.token"),
  me: null,
  technicians: new Map(), // id -> technician
  channels: new Map(), // id -> channel
  list: { kind: "home" }, // or { kind: "channel", id } or { kind: "admin" }
  sessions: [],
  selected: null, // session id
  events: null, // AbortController of the live stream
  passwordKnown: null, // the one-time password just typed at sign-in, until replaced
  settings: null, // relay-wide settings (the organisation)
};

// This module: the shared state and the API client.
// ---- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", "The relay cannot be reached. Check your connection and try again.");
  }
  const text = await response.text();
  let value = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch (e) {
    // Not the relay's JSON (a proxy's error page): the status line says what happened.
  }
  if (!response.ok) {
    const error = (value && value.error) || {};
    if (response.status === 401 && path !== "/login" && path !== "/logout") signOut("Your sign-in has expired. Please sign in again.");
    throw new ApiError(response.status, error.code || "error", error.message || `${response.status} ${response.statusText}`);
  }
  return value;
}
