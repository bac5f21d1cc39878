// ---- Files between the technician's browser and the end user (with their files grant) -------
//
// Offers, answers and results are the relay protocol's messages on the control channel
// ({"FileOffer": {...}}, {"FileAnswer": {...}}, {"FileResult": {...}}), as a native viewer
// sends them; the bytes go on a second data channel, "files", as binary messages: the
// transfer's id (8 bytes, big-endian) and up to 16 KiB − 8 bytes of the file. Sending waits
// while more than a megabyte is buffered (the relay takes the next message only once the last
// went on to the end user's app). The end user's app checks size and SHA-256 and saves a file
// whole or not at all; a file from the end user is checked here the same way before it is
// offered for saving. WebCrypto has no incremental SHA-256, so a file is hashed whole in
// memory: the channel's file limit bounds it.

import { $ } from "./api.js";

const CHUNK = 16 * 1024 - 8;
const HIGH_WATER = 1024 * 1024;

const files = {
  channel: null,
  send: null, // sends a control message (the viewer's)
  allowed: false,
  outgoing: new Map(), // transfer -> { name, bytes }
  incoming: new Map(), // transfer -> { offer, parts, received }
  offered: null, // the end user's offer being asked about
  saved: null, // the object URL of the last file received
};

// Opens the files channel on a new peer connection; `send` sends control messages.
export function openFilesChannel(pc, send) {
  const channel = pc.createDataChannel("files");
  channel.binaryType = "arraybuffer";
  channel.bufferedAmountLowThreshold = HIGH_WATER / 2;
  channel.onmessage = (e) => fileChunk(e.data);
  files.channel = channel;
  files.send = send;
}

export function resetFiles() {
  files.channel = null;
  files.outgoing.clear();
  files.incoming.clear();
  files.offered = null;
  $("viewer-file-offer").hidden = true;
  $("viewer-file-progress").hidden = true;
  $("viewer-file-save").hidden = true;
  note("");
  allowFiles(false);
}

// The end user's files grant to this technician, as the relay last said.
export function allowFiles(allowed) {
  files.allowed = allowed;
  $("viewer-send-file").hidden = !allowed;
  $("screen-box").classList.toggle("takes-files", allowed);
}

function note(text) {
  $("viewer-file-note").textContent = text;
}

function progress(done, total) {
  const bar = $("viewer-file-progress");
  bar.hidden = done >= total;
  bar.max = total;
  bar.value = done;
}

function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A transfer id below 2^53, so that it stays exact as a JSON number.
function newTransfer() {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high & 0x1fffff) * 2 ** 32 + low;
}

// Offers `file` to the end user (they are asked whether to save it, and where).
export async function sendFile(file) {
  if (!files.allowed || !files.channel) return;
  note(`reading “${file.name}”…`);
  let bytes;
  let sha256;
  try {
    bytes = await file.arrayBuffer();
    sha256 = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
  } catch (e) {
    note(`cannot read “${file.name}”: ${e.message}`);
    return;
  }
  const transfer = newTransfer();
  files.outgoing.set(transfer, { name: file.name, bytes });
  files.send({ FileOffer: { transfer, name: file.name, size: bytes.byteLength, sha256, from: "" } });
  note(`“${file.name}” (${size(bytes.byteLength)}): waiting for the end user to accept it…`);
}

async function sendBytes(transfer) {
  const t = files.outgoing.get(transfer);
  const channel = files.channel;
  const total = t.bytes.byteLength;
  note(`sending “${t.name}”…`);
  for (let at = 0; at < total; at += CHUNK) {
    while (channel.bufferedAmount > HIGH_WATER && channel.readyState === "open") {
      await new Promise((resolve) => channel.addEventListener("bufferedamountlow", resolve, { once: true }));
    }
    if (channel.readyState !== "open" || !files.outgoing.has(transfer)) return;
    const length = Math.min(CHUNK, total - at);
    const message = new Uint8Array(8 + length);
    new DataView(message.buffer).setBigUint64(0, BigInt(transfer));
    message.set(new Uint8Array(t.bytes, at, length), 8);
    channel.send(message);
    progress(at + length, total);
  }
  note(`“${t.name}” sent; the end user's app is checking it…`);
}

// A control message about files: handled here (true), or not one (false).
export function fileMessage(message) {
  if (message.FileAnswer) {
    const { transfer, accepted } = message.FileAnswer;
    const t = files.outgoing.get(transfer);
    if (t && accepted) sendBytes(transfer);
    else if (t) {
      files.outgoing.delete(transfer);
      note(`the end user declined “${t.name}”`);
    }
    return true;
  }
  if (message.FileResult) {
    const { transfer, saved, message: why } = message.FileResult;
    const sent = files.outgoing.get(transfer);
    const coming = files.incoming.get(transfer);
    files.outgoing.delete(transfer);
    if (sent) {
      progress(1, 1);
      note(saved ? `“${sent.name}” saved on the end user's computer (size and SHA-256 checked)` : `“${sent.name}” was not saved: ${why}`);
    } else if (coming && !saved) {
      files.incoming.delete(transfer);
      progress(1, 1);
      note(`“${coming.offer.name}” did not arrive: ${why}`);
    }
    return true;
  }
  if (message.FileOffer) {
    files.offered = message.FileOffer;
    $("viewer-file-offer-text").textContent = `The end user sends you “${message.FileOffer.name}” (${size(message.FileOffer.size)}).`;
    $("viewer-file-offer").hidden = false;
    return true;
  }
  return false;
}

function answerOffer(accepted) {
  const offer = files.offered;
  if (!offer) return;
  files.offered = null;
  $("viewer-file-offer").hidden = true;
  if (accepted) files.incoming.set(offer.transfer, { offer, parts: [], received: 0 });
  files.send({ FileAnswer: { transfer: offer.transfer, accepted } });
  note(accepted ? `receiving “${offer.name}”…` : `declined “${offer.name}”`);
}

async function fileChunk(data) {
  if (!(data instanceof ArrayBuffer) || data.byteLength <= 8) return;
  const transfer = Number(new DataView(data).getBigUint64(0));
  const t = files.incoming.get(transfer);
  if (!t) return;
  t.parts.push(data.slice(8));
  t.received += data.byteLength - 8;
  progress(t.received, t.offer.size);
  if (t.received < t.offer.size) return;
  files.incoming.delete(transfer);
  const blob = new Blob(t.parts, { type: "application/octet-stream" });
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  const whole = t.received === t.offer.size && digest.every((b, i) => b === t.offer.sha256[i]);
  files.send({ FileResult: { transfer, saved: whole, message: whole ? "" : "the file arrived damaged (size or SHA-256)" } });
  if (!whole) {
    note(`“${t.offer.name}” arrived damaged and was dropped`);
    return;
  }
  if (files.saved) URL.revokeObjectURL(files.saved);
  files.saved = URL.createObjectURL(blob);
  const link = $("viewer-file-save");
  link.href = files.saved;
  link.download = t.offer.name;
  link.dataset.sha256 = hex(digest);
  link.textContent = `Save “${t.offer.name}”`;
  link.hidden = false;
  note(`“${t.offer.name}” received (${size(t.offer.size)}, SHA-256 checked)`);
}

export function setupFiles() {
  const input = $("viewer-file-input");
  $("viewer-send-file").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length > 0) sendFile(input.files[0]);
    input.value = "";
  });
  $("viewer-file-accept").addEventListener("click", () => answerOffer(true));
  $("viewer-file-decline").addEventListener("click", () => answerOffer(false));
  // A file dropped on the picture is offered like a picked one.
  const box = $("screen-box");
  box.addEventListener("dragover", (e) => {
    if (files.allowed && e.dataTransfer.types.includes("Files")) e.preventDefault();
  });
  box.addEventListener("drop", (e) => {
    if (!files.allowed || e.dataTransfer.files.length === 0) return;
    e.preventDefault();
    sendFile(e.dataTransfer.files[0]);
  });
}
