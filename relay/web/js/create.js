// ---- Creating sessions -------------------------------------------------------------------------

import { $, api, state } from "./api.js";
import { reload } from "./lists.js";

export async function createSession(event) {
  event.preventDefault();
  $("desk-error").textContent = "";
  const channel = Number($("create-channel").value);
  const kind = document.querySelector("input[name=kind]:checked").value;
  const name = $("create-name").value.trim();
  try {
    const s = await api("POST", `/channels/${channel}/sessions`, { kind, name: name || null });
    $("create-name").value = "";
    $("created").hidden = false;
    $("created-what").textContent =
      kind === "pin" ? "Read this PIN to the end user; they type it into the support app:" : "Send this link to the end user:";
    $("created-code").textContent = s.pin ? spacedPin(s.pin) : s.link;
    $("created-code").className = kind === "pin" ? "code pin" : "code";
    $("created-copied").textContent = "";
    $("created-copy").onclick = () => copy(s.pin || s.link, $("created-copied"), s.pin ? "PIN copied." : "Link copied.");
    state.selected = s.id;
    await reload();
  } catch (e) {
    $("desk-error").textContent = e.message;
  }
}

// "123 456": easier to read out on the phone; the support app accepts it with or without
// the space.
export function spacedPin(pin) {
  return `${pin.slice(0, 3)} ${pin.slice(3)}`;
}

// Copies `text` and says so in `where` (for a few seconds). The asynchronous clipboard needs a
// secure, focused page; the older copy command works in more places; if both fail the text is
// shown selected so the technician can copy it by hand.
export async function copy(text, where, done) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    try {
      copied = document.execCommand("copy");
    } catch (e2) {
      copied = false;
    }
    area.remove();
  }
  where.textContent = copied ? done : `Copy this by hand: ${text}`;
  clearTimeout(where.copiedTimer);
  if (copied) where.copiedTimer = setTimeout(() => (where.textContent = ""), 4000);
}
