// ---- Chat --------------------------------------------------------------------------------------
//
// The selected session's chat: loaded with the session, followed through the live events, sent
// with POST /sessions/{id}/chat. It works before the end user allowed anything (the technician
// can say who they are). Lines are shown as text (textContent), never parsed as markup.

import { $, api, state } from "./api.js";
import { viewer } from "./viewer.js";

export const chat = { session: null, lines: [], seen: new Set() };

function chatKey(m) {
  return `${m.at}|${m.technician_id ?? "end_user"}|${m.text}`;
}

// Where the technician can write, and why not.
export async function loadChat(s) {
  const connected = !s.deleted && (s.state === "active" || s.state === "in_queue");
  const me = state.me ? state.me.id : null;
  const onSession = me !== null && (s.assigned_technician_id === me || s.invited_technician_ids.includes(me));
  const canWrite = connected && onSession;
  $("chat-input").disabled = !canWrite;
  $("chat-send").disabled = !canWrite;
  $("chat-help").textContent = !connected
    ? "The end user's support app is not connected: you can write once it is."
    : !onSession
      ? "Only the technicians on this session can write here: assign yourself or be invited."
      : "The end user sees your messages in the support app, with your name.";
  if (chat.session !== s.id) {
    chat.session = s.id;
    chat.lines = [];
    chat.seen = new Set();
    $("chat-error").textContent = "";
    renderChat();
  }
  let lines;
  try {
    lines = await api("GET", `/sessions/${s.id}/chat`);
  } catch (e) {
    return;
  }
  if (chat.session !== s.id) return;
  chat.lines = lines;
  chat.seen = new Set(lines.map(chatKey));
  renderChat();
}

function chatLine(m) {
  const li = document.createElement("li");
  li.className = m.from === "end_user" ? "end-user" : "technician";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = state.me && m.technician_id === state.me.id ? "You" : m.name;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(who, when, document.createTextNode(m.text));
  return li;
}

function renderChat() {
  $("chat-lines").replaceChildren(...chat.lines.map(chatLine));
  $("chat-lines").scrollTop = $("chat-lines").scrollHeight;
}

// A line from the live events (ours too: what is shown is what the relay recorded).
export function chatReceived(m) {
  if (!m || m.session_id !== chat.session || chat.seen.has(chatKey(m))) return;
  chat.seen.add(chatKey(m));
  chat.lines.push(m);
  $("chat-lines").append(chatLine(m));
  $("chat-lines").scrollTop = $("chat-lines").scrollHeight;
  const fromOthers = !(state.me && m.technician_id === state.me.id);
  if (fromOthers && viewer.session === m.session_id && $("viewer-chat").hidden) {
    // While viewing, a new line opens the chat beside the picture.
    showViewerChat(true);
  }
}

export async function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || chat.session === null) return;
  $("chat-error").textContent = "";
  try {
    const line = await api("POST", `/sessions/${chat.session}/chat`, { text });
    $("chat-input").value = "";
    chatReceived(line);
  } catch (e) {
    $("chat-error").textContent = e.message;
  }
}

// While viewing, the chat sits beside the picture (the same element, moved).
export function showViewerChat(show) {
  $("viewer-chat").hidden = !show;
  $("viewer-chat-toggle").textContent = show ? "Hide chat" : "Chat";
  if (show) $("viewer-chat").append($("chat"));
}

export function chatBackToDetail() {
  $("viewer-chat").hidden = true;
  $("chat-home").append($("chat"));
}
