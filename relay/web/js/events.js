// ---- Live updates -----------------------------------------------------------------------------

import { $, state } from "./api.js";
import { chatReceived } from "./chat.js";
import { reload } from "./lists.js";
import { signOut } from "./signin.js";

export function setLive(on) {
  $("live").textContent = on ? "live" : "offline";
  $("live").className = on ? "live on" : "live off";
}

let reloadTimer = null;
function reloadSoon() {
  // Bursts of events (a transfer touches two channels) become one reload.
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(reload, 100);
}

export async function followEvents() {
  if (state.events) state.events.abort();
  const controller = new AbortController();
  state.events = controller;
  let delay = 500;
  while (!controller.signal.aborted && state.token) {
    try {
      const response = await fetch("/api/v1/events", {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (response.status === 401) {
        signOut("Your sign-in has expired. Please sign in again.");
        return;
      }
      if (!response.ok) throw new Error(`events: ${response.status}`);
      setLive(true);
      delay = 500;
      reloadSoon(); // anything missed while reconnecting
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
          if (!data) continue;
          let event = null;
          try {
            event = JSON.parse(data);
          } catch (e) {
            // Not ours to read: reload what is shown.
          }
          if (event && event.type === "chat") chatReceived(event.message);
          else reloadSoon();
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}
