// ---- A session's recordings: listed under its history, played in the page -------------------
//
// A channel that records its sessions gets one recording per stretch of shared screen (a new one
// at each display change and relay restart). The video is fetched with the token in the
// Authorization header (never in a URL) and played from memory; the relay audits every fetch.
// Its timed log (consent, control, input, chat, clipboard) stands beside the video: the line
// being played is marked, and a click on a line jumps there.

import { $, api, state } from "./api.js";

// The recording shown in the player: { id, url } (its object URL is released when replaced).
let playing = null;

export async function loadRecordings(id) {
  let recordings;
  try {
    recordings = await api("GET", `/sessions/${id}/recordings`);
  } catch (e) {
    return;
  }
  if (state.selected !== id) return;
  $("recordings-section").hidden = recordings.length === 0;
  const items = recordings.map((r) => {
    const li = document.createElement("li");
    li.dataset.recording = String(r.id);
    const started = new Date(r.started_at).toLocaleString();
    const length = r.ended_at ? duration(r.duration_ms) : "being recorded";
    const text = document.createElement("span");
    text.textContent = `${started} — ${length}, ${r.width}×${r.height}, ${size(r.bytes)} `;
    const play = document.createElement("button");
    play.type = "button";
    play.textContent = "Play";
    play.addEventListener("click", () => openPlayer(r));
    li.append(text, play);
    return li;
  });
  $("recordings").replaceChildren(...items);
  if (playing && !recordings.some((r) => r.id === playing.id)) closePlayer();
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function closePlayer() {
  if (playing) URL.revokeObjectURL(playing.url);
  playing = null;
  const video = $("player-video");
  video.removeAttribute("src");
  video.load();
  $("player").hidden = true;
}

async function openPlayer(r) {
  $("player-error").textContent = "";
  let log;
  let blob;
  try {
    log = await api("GET", `/recordings/${r.id}/log`);
    const response = await fetch(`/api/v1/recordings/${r.id}/video`, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) throw new Error(`the relay answered ${response.status} ${response.statusText}`);
    blob = await response.blob();
  } catch (e) {
    $("player-error").textContent = `Cannot play the recording: ${e.message}`;
    return;
  }
  closePlayer();
  playing = { id: r.id, url: URL.createObjectURL(blob) };
  const video = $("player-video");
  video.dataset.recording = String(r.id);
  video.src = playing.url;
  $("player-title").textContent = `Recording of ${new Date(r.started_at).toLocaleString()}`;
  const download = $("player-download");
  download.href = playing.url;
  download.download = `deskline-session-${r.session_id}-recording-${r.id}.mp4`;
  const lines = log.map((l) => {
    const li = document.createElement("li");
    li.dataset.t = String(l.t_ms);
    li.dataset.kind = l.kind;
    const at = document.createElement("time");
    at.textContent = clock(l.t_ms);
    const what = document.createElement("span");
    what.textContent = ` ${l.text}`;
    li.append(at, what);
    li.addEventListener("click", () => {
      video.currentTime = l.t_ms / 1000;
    });
    return li;
  });
  $("player-log").replaceChildren(...lines);
  $("player").hidden = false;
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// Marks the last log line at or before the video's time.
export function followLog() {
  const now = $("player-video").currentTime * 1000;
  let current = null;
  for (const li of $("player-log").children) {
    li.classList.remove("now");
    if (Number(li.dataset.t) <= now) current = li;
  }
  if (current) current.classList.add("now");
}
