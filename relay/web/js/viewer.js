// ---- Viewing and controlling in the browser (WebRTC) ------------------------------------------
//
// The relay is the other WebRTC peer: it answers our offer (POST /sessions/{id}/webrtc, ICE
// candidates gathered first, no trickling), sends the end user's screen as an H.264 track and
// reads our data channel "control", on which both sides exchange the relay protocol's messages
// as JSON ({"Input": {...}}, {"ControlHandover": {"holder": 3}}, "KeyframeRequest", ...). The
// relay admits input only from the technician holding control, and only while the end user
// grants control.
//
// Clipboard (only with the end user's clipboard grant): Ctrl+V in the picture lets the browser
// fire its paste event, whose text goes to the end user's clipboard ({"Clipboard": {"text"}})
// before the V key does, so the remote program pastes it; the end user's copies arrive the
// same way and are put on this computer's clipboard (or offered with a button where the
// browser wants a click for it). Files (with the files grant) are `files.js`'s, on a data
// channel of their own.

import { $, api, state } from "./api.js";
import { chat, chatBackToDetail, loadChat, showViewerChat } from "./chat.js";
import { fillSelect, technicianName } from "./directory.js";
import { allowFiles, fileMessage, openFilesChannel, resetFiles, setupFiles } from "./files.js";

export const viewer = {
  pc: null,
  channel: null,
  session: null,
  holder: null, // who holds control
  canView: false, // the end user lets me see the screen (the relay's Access message)
  canControl: false, // ... and control it
  canClipboard: false, // ... and exchange copied text
  pasteKey: null, // the timer that sends a held-back V key if no paste event comes
  copied: "", // the end user's last copied text
  ended: false, // the relay said bye
  sessionView: null, // the session shown, to join again after losing the relay
  lostSince: null, // when the relay was lost, while joining again
  retry: null, // the timer of the next attempt
  paused: null, // why the end user's picture stopped (protocol PauseReason), while it is stopped
  displays: [],
  pendingMove: null,
  wheel: { x: 0, y: 0 },
};

function viewerStatus(text) {
  $("viewer-status").textContent = text;
}

// The viewer is its own view: the session lists and the side panel make way for the picture.
// `lostSince`: when the relay was lost, while joining again (see followRelay).
export async function openViewer(s, lostSince = null) {
  closeViewer();
  viewer.session = s.id;
  viewer.sessionView = s;
  viewer.lostSince = lostSince;
  viewer.ended = false;
  $("desk").classList.add("viewing");
  $("desk-lists").hidden = true;
  $("viewer").hidden = false;
  updateControlButton();
  $("viewer-title").textContent = s.name || `Session ${s.id}`;
  if (chat.session !== s.id) loadChat(s);
  showViewerChat(false);
  viewerStatus("connecting…");
  const pc = new RTCPeerConnection({ iceServers: [] });
  viewer.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const channel = pc.createDataChannel("control");
  viewer.channel = channel;
  channel.onmessage = (e) => viewerMessage(e.data);
  channel.onclose = () => followRelay(pc, "the connection closed");
  openFilesChannel(pc, send);
  pc.ontrack = (e) => {
    const video = $("screen");
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (viewer.pc !== pc) return;
    if (pc.connectionState === "connected") {
      viewer.lostSince = null;
      viewerStatus(controlText());
      watchLoss(pc);
    }
    // "disconnected": the relay stopped answering ICE checks for a few seconds (it died).
    if (pc.connectionState === "disconnected" || pc.connectionState === "failed") followRelay(pc, "the relay stopped answering");
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    const answer = await api("POST", `/sessions/${s.id}/webrtc`, { sdp: pc.localDescription.sdp });
    if (viewer.pc !== pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (e) {
    // The relay not there (yet): keep trying while following it; a refusal is final.
    if (viewer.pc === pc && viewer.lostSince && e.code === "unreachable") followRelay(pc, e.message);
    else if (viewer.pc === pc) viewerStatus(e.message);
  }
}

// How long the viewer tries to get back to a lost relay (the native viewer's RECONNECT_FOR: a
// restart and the app's resumption fit well within it), and how often.
const FOLLOW_RELAY_FOR_MS = 60000;
const FOLLOW_RELAY_EVERY_MS = 1000;

// The relay was lost — restarting (it said so), crashed, or unreachable — while the session
// goes on: join again every second for a minute, as the native viewer does. A bye for any
// other reason (the session closed, consent withdrawn) ends the view.
function followRelay(pc, why) {
  if (viewer.pc !== pc || viewer.ended) return;
  const lostSince = viewer.lostSince || Date.now();
  if (Date.now() - lostSince > FOLLOW_RELAY_FOR_MS) {
    viewer.ended = true;
    updateControlButton();
    viewerStatus(`lost the relay (${why}); it did not come back within a minute`);
    return;
  }
  viewer.pc = null;
  pc.close();
  viewer.lostSince = lostSince;
  viewer.holder = null;
  updateControlButton();
  viewerStatus(`lost the relay (${why}); reconnecting…`);
  const session = viewer.sessionView;
  viewer.retry = setTimeout(() => {
    if (viewer.session === session.id && !viewer.pc) openViewer(session, lostSince);
  }, FOLLOW_RELAY_EVERY_MS);
}

// A lost packet leaves the decoder waiting for a keyframe: the browser then sends RTCP PLI,
// which the relay does not read from RTP; ask for one on the data channel instead (the relay
// passes at most one request per 250 ms to the app).
function watchLoss(pc) {
  let pli = 0;
  const timer = setInterval(async () => {
    if (viewer.pc !== pc) {
      clearInterval(timer);
      return;
    }
    const stats = await pc.getStats();
    stats.forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "video" && report.pliCount > pli) {
        pli = report.pliCount;
        send("KeyframeRequest");
      }
    });
  }, 500);
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    // Host candidates come at once; do not wait long for anything else.
    setTimeout(resolve, 2000);
  });
}

export function closeViewer() {
  const wasOpen = !$("viewer").hidden;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (viewer.pc) viewer.pc.close();
  clearTimeout(viewer.retry);
  viewer.pc = null;
  viewer.channel = null;
  viewer.session = null;
  viewer.lostSince = null;
  viewer.holder = null;
  viewer.canView = false;
  viewer.canControl = false;
  viewer.canClipboard = false;
  resetFiles();
  viewer.copied = "";
  $("viewer-clipboard").hidden = true;
  viewer.paused = null;
  $("screen").srcObject = null;
  $("screen").classList.remove("controlling");
  $("viewer").hidden = true;
  $("desk").classList.remove("viewing");
  chatBackToDetail();
  if (wasOpen && state.list.kind !== "admin") $("desk-lists").hidden = false;
}

export function send(message) {
  if (viewer.channel && viewer.channel.readyState === "open") viewer.channel.send(JSON.stringify(message));
}

function controlling() {
  return state.me !== null && viewer.holder === state.me.id;
}

// Take control only with the end user's consent to control, saying why not otherwise; the
// special keys only while controlling; asking for consent from here while it is missing.
function updateControlButton() {
  const button = $("viewer-control");
  button.disabled = !viewer.canControl && !controlling();
  button.title = viewer.canControl
    ? ""
    : viewer.canView
      ? "The end user allowed you to view only"
      : "The end user has not allowed you to view or control";
  $("viewer-keys").disabled = !controlling();
  $("viewer-keys").title = controlling() ? "Send a key combination the browser would keep for itself" : "Take control first";
  $("viewer-ask").hidden = viewer.canControl || viewer.ended;
  $("viewer-ask").textContent = viewer.canView ? "Ask for control" : "Ask to view and control";
}

// Key combinations the technician's own browser or system would act on instead of sending
// (KeyboardEvent.code names, pressed in order and released in reverse). Windows lets no
// program send Ctrl+Alt+Del (the secure attention sequence only comes from the keyboard or a
// system service): the end user presses it there; X11 desktops receive it as keys.
const SPECIAL_KEYS = {
  "ctrl-alt-del": ["ControlLeft", "AltLeft", "Delete"],
  "alt-tab": ["AltLeft", "Tab"],
  super: ["MetaLeft"],
  "ctrl-esc": ["ControlLeft", "Escape"],
  print: ["PrintScreen"],
  "alt-f4": ["AltLeft", "F4"],
};

function sendSpecialKeys(name) {
  const codes = SPECIAL_KEYS[name];
  if (!codes || !controlling()) return;
  for (const code of codes) send({ Input: { key: { code, press: "down", text: null } } });
  for (const code of [...codes].reverse()) send({ Input: { key: { code, press: "up", text: null } } });
}

function setZoom(mode) {
  $("screen-box").className = mode === "actual" ? "actual" : "fit";
}

async function toggleFullscreen() {
  try {
    if (document.fullscreenElement) await document.exitFullscreen();
    else await $("viewer").requestFullscreen();
  } catch (e) {
    viewerStatus(`full screen is not available: ${e.message}`);
  }
}

function controlText() {
  if (!viewer.canView) return "waiting for the end user's consent";
  if (viewer.paused) return `the picture stopped: ${PAUSE_REASONS[viewer.paused] || viewer.paused}`;
  if (controlling()) return "you control the screen";
  if (viewer.holder !== null) return `${technicianName(viewer.holder)} controls the screen`;
  return "viewing";
}

// Why the end user's picture stopped (protocol PauseReason).
const PAUSE_REASONS = {
  secure_desktop: "the end user's screen shows a UAC prompt or the lock screen, which no app may capture",
  screen_saver: "the end user's screen saver is running",
  capture_failed: "the support app cannot capture the screen any more",
};

function viewerMessage(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch (e) {
    return;
  }
  if (message.ControlHandover) {
    viewer.holder = message.ControlHandover.holder;
    $("viewer-control").textContent = controlling() ? "Release control" : "Take control";
    updateControlButton();
    $("screen").classList.toggle("controlling", controlling());
    viewerStatus(controlText());
  } else if (message.Access) {
    // Consent is per technician: what the end user lets *me* do.
    const mine = message.Access.grants.find((g) => g.technician === state.me.id);
    const couldView = viewer.canView;
    viewer.canView = Boolean(mine && mine.capabilities.view);
    viewer.canControl = Boolean(mine && mine.capabilities.control);
    viewer.canClipboard = Boolean(mine && mine.capabilities.clipboard);
    allowFiles(Boolean(mine && mine.capabilities.files));
    updateControlButton();
    if (viewer.canView) viewerStatus(controlText());
    else viewerStatus(couldView ? "the end user stopped sharing" : "waiting for the end user's consent");
  } else if (message.DisplaysChanged) {
    viewer.displays = message.DisplaysChanged.displays;
    fillSelect(
      $("viewer-display"),
      viewer.displays.map((d) => [d.id, `${d.name || `Display ${d.id}`} (${d.width}×${d.height})${d.primary ? ", primary" : ""}`]),
    );
  } else if (message.ScreenState) {
    // The end user's picture stopped (a UAC prompt, the lock screen) or runs again.
    const paused = message.ScreenState.paused;
    viewer.paused = paused || null;
    if (viewer.canView) viewerStatus(controlText());
  } else if (fileMessage(message)) {
    // (a file offered, answered or checked)
  } else if (message.Clipboard) {
    receivedClipboard(message.Clipboard.text);
  } else if (message.Bye && message.Bye.reason === "server_shutdown") {
    followRelay(viewer.pc, message.Bye.message);
  } else if (message.Bye) {
    viewer.ended = true;
    updateControlButton();
    viewerStatus(`ended: ${message.Bye.message}`);
  }
}

// Where a pointer event falls on the remote display, in its pixels (the picture is scaled to
// fit the element and centred); null outside the picture.
function remotePoint(event) {
  const video = $("screen");
  const [w, h] = [video.videoWidth, video.videoHeight];
  if (!w || !h) return null;
  const rect = video.getBoundingClientRect();
  const scale = Math.min(rect.width / w, rect.height / h);
  const left = rect.left + (rect.width - w * scale) / 2;
  const top = rect.top + (rect.height - h * scale) / 2;
  const x = Math.floor((event.clientX - left) / scale);
  const y = Math.floor((event.clientY - top) / scale);
  if (x < 0 || y < 0 || x >= w || y >= h) return null;
  return { x, y };
}

const BUTTONS = ["left", "middle", "right", "back", "forward"];

function pointerInput(event) {
  if (!controlling()) return;
  const point = remotePoint(event);
  if (point === null) return;
  if (event.type === "mousemove") {
    // At most one move per animation frame.
    if (viewer.pendingMove === null) requestAnimationFrame(flushMove);
    viewer.pendingMove = point;
    return;
  }
  event.preventDefault();
  const button = BUTTONS[event.button];
  if (!button) return;
  $("screen").focus();
  viewer.pendingMove = point;
  flushMove();
  send({ Input: { button: { button, press: event.type === "mousedown" ? "down" : "up" } } });
}

function flushMove() {
  if (viewer.pendingMove === null) return;
  send({ Input: { pointer_move: viewer.pendingMove } });
  viewer.pendingMove = null;
}

function wheelInput(event) {
  if (!controlling()) return;
  event.preventDefault();
  // Pixel deltas add up to notches of 100 px; line and page deltas are notches already.
  const unit = event.deltaMode === 0 ? 100 : 1;
  viewer.wheel.x += event.deltaX / unit;
  viewer.wheel.y += event.deltaY / unit;
  const dx = Math.trunc(viewer.wheel.x);
  const dy = Math.trunc(viewer.wheel.y);
  if (dx === 0 && dy === 0) return;
  viewer.wheel.x -= dx;
  viewer.wheel.y -= dy;
  send({ Input: { wheel: { dx, dy } } });
}

// The protocol's limit on clipboard text (MAX_CLIPBOARD_TEXT_BYTES), in UTF-8 bytes.
const MAX_CLIPBOARD_BYTES = 32 * 1024;

function clipboardNote(text) {
  $("viewer-clipboard-note").textContent = text;
  $("viewer-clipboard").hidden = false;
}

// The end user copied text: onto this computer's clipboard if the browser lets the page write
// it now, otherwise a button does it (a click is what browsers ask for).
async function receivedClipboard(text) {
  viewer.copied = text;
  const chars = [...text].length;
  $("viewer-clipboard-copy").hidden = true;
  try {
    await navigator.clipboard.writeText(text);
    clipboardNote(`the end user copied ${chars} characters: on your clipboard`);
  } catch (e) {
    clipboardNote(`the end user copied ${chars} characters`);
    $("viewer-clipboard-copy").hidden = false;
  }
}

function sendPasteKey() {
  clearTimeout(viewer.pasteKey);
  viewer.pasteKey = null;
  send({ Input: { key: { code: "KeyV", press: "down", text: null } } });
}

// The browser's paste event (after a Ctrl+V in the picture): its text first, then the key.
export function pasteInput(event) {
  if (!controlling() || !viewer.canClipboard || $("viewer").hidden) return;
  event.preventDefault();
  const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
  if (text && new TextEncoder().encode(text).length > MAX_CLIPBOARD_BYTES) {
    clipboardNote(`your copied text is too long to paste across (at most ${MAX_CLIPBOARD_BYTES / 1024} KiB): send it as a file`);
  } else if (text) {
    send({ Clipboard: { text } });
    clipboardNote(`pasted ${[...text].length} characters to the end user's clipboard`);
  }
  if (viewer.pasteKey !== null) sendPasteKey();
}

function keyInput(event) {
  if (!controlling() || !event.code) return;
  if (event.type === "keydown" && event.code === "KeyV" && (event.ctrlKey || event.metaKey) && viewer.canClipboard) {
    // Not prevented, so the browser fires its paste event (pasteInput), which sends the key
    // after the text; without one (nothing to paste) the key goes alone a moment later.
    clearTimeout(viewer.pasteKey);
    viewer.pasteKey = setTimeout(sendPasteKey, 200);
    return;
  }
  event.preventDefault();
  const text = event.key.length === 1 ? event.key : null;
  send({ Input: { key: { code: event.code, press: event.type === "keydown" ? "down" : "up", text } } });
}

export function setupViewer() {
  setupFiles();
  const video = $("screen");
  for (const type of ["mousemove", "mousedown", "mouseup"]) video.addEventListener(type, pointerInput);
  video.addEventListener("wheel", wheelInput, { passive: false });
  video.addEventListener("keydown", keyInput);
  video.addEventListener("keyup", keyInput);
  document.addEventListener("paste", pasteInput);
  $("viewer-clipboard-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(viewer.copied);
      $("viewer-clipboard-copy").hidden = true;
      clipboardNote(`the end user's copied text is on your clipboard`);
    } catch (e) {
      clipboardNote(`this browser refused the clipboard: ${e.message}`);
    }
  });
  video.addEventListener("contextmenu", (e) => {
    if (controlling()) e.preventDefault();
  });
  $("viewer-control").addEventListener("click", () => {
    send({ ControlHandover: { holder: controlling() ? null : state.me.id } });
    video.focus();
  });
  $("viewer-display").addEventListener("change", () => send({ SelectDisplay: { display: Number($("viewer-display").value) } }));
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-chat-toggle").addEventListener("click", () => showViewerChat($("viewer-chat").hidden));
  $("viewer-zoom").addEventListener("change", () => setZoom($("viewer-zoom").value));
  $("viewer-fullscreen").addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    $("viewer-fullscreen").textContent = document.fullscreenElement ? "Leave full screen" : "Full screen";
  });
  $("viewer-keys").addEventListener("change", () => {
    sendSpecialKeys($("viewer-keys").value);
    $("viewer-keys").value = "";
    video.focus();
  });
  $("viewer-ask").addEventListener("click", async () => {
    try {
      await api("POST", `/sessions/${viewer.session}/remote`, { capabilities: "view,control,files,clipboard" });
      viewerStatus("asked the end user; waiting for their answer");
    } catch (e) {
      viewerStatus(e.message);
    }
  });
}
