// ---- Technicians and channels ---------------------------------------------------------------

import { renderAdmin } from "./admin.js";
import { $, api, state } from "./api.js";
import { showList } from "./lists.js";
import { select } from "./session.js";

export async function loadDirectory() {
  const [technicians, channels, settings] = await Promise.all([api("GET", "/technicians"), api("GET", "/channels"), api("GET", "/settings")]);
  state.settings = settings;
  state.technicians = new Map(technicians.map((t) => [t.id, t]));
  state.channels = new Map(channels.map((c) => [c.id, c]));
  const mine = channels.filter((c) => c.member_ids.includes(state.me.id));
  fillSelect($("create-channel"), mine.map((c) => [c.id, c.name]));
  const nav = $("lists");
  nav.replaceChildren();
  nav.append(navButton("Home", { kind: "home" }));
  for (const c of channels) nav.append(navButton(`Channel: ${c.name}`, { kind: "channel", id: c.id }));
  if (state.me.role === "admin") {
    nav.append(navButton("Deleted sessions", { kind: "deleted" }));
    nav.append(navButton("Administration", { kind: "admin" }));
  }
  for (const b of nav.children) b.setAttribute("aria-current", String(b.dataset.list === JSON.stringify(state.list)));
  if (state.list.kind === "admin") renderAdmin();
}

function navButton(label, list) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.list = JSON.stringify(list);
  b.addEventListener("click", () => showList(list));
  return b;
}

function channelName(id) {
  const c = state.channels.get(id);
  return c ? c.name : `channel ${id}`;
}

// "view", "view and control", "view, control, files and clipboard" (as the relay's own words).
export function capabilitiesText(c) {
  const names = ["view", "control", "files", "clipboard"].filter((n) => c[n]);
  if (names.length === 0) return "nothing";
  const last = names.pop();
  return names.length ? `${names.join(", ")} and ${last}` : last;
}

export const ACTION_HELP = {
  assign: "Assign makes them the owner of the session; the current owner, if any, leaves it.",
  transfer: "Transfer hands the session from its owner to them; the end user is asked again before they see the screen.",
  invite: "Invite adds them as a collaborator (three technicians at most); the end user is asked again before they see the screen.",
  channel: "The session leaves this channel for the other channel's queue; nobody owns it there until someone takes it.",
};

// One audit event's action in words.
export function describe(a, actor) {
  switch (a.action) {
    case "created":
      return `created (${a.kind === "pin" ? "PIN" : "link"} session in ${channelName(a.channel)})`;
    case "app_connected":
      return a.resumed ? "support app reconnected" : "support app connected";
    case "app_disconnected":
      return "support app disconnected";
    case "assigned":
      return `assigned to ${technicianName(a.technician)}`;
    case "transferred_to_technician":
      return `transferred from ${technicianName(a.previous)} to ${technicianName(a.technician)}`;
    case "transferred_to_channel":
      return `moved from ${channelName(a.from)} to the queue of ${channelName(a.to)}`;
    case "invited":
      return `invited ${technicianName(a.technician)}`;
    case "released":
      return `released (was ${technicianName(a.technician)})`;
    case "remote_requested":
      return `asked the end user for ${capabilitiesText(a.capabilities)}`;
    case "consent_decided":
      if (a.outcome === "denied") return "consent denied by the end user";
      if (a.outcome === "timed_out") return "consent not answered in time (denied)";
      return a.technician
        ? `consent granted to ${technicianName(a.technician)}: ${capabilitiesText(a.outcome.granted)}`
        : `consent granted: ${capabilitiesText(a.outcome.granted)}`;
    case "consent_changed":
      return `the end user changed consent to ${capabilitiesText(a.capabilities)}`;
    case "chat":
      return `wrote “${a.text}”`;
    case "file": {
      const outcome = { saved: "saved", declined: "declined", failed: "not saved" }[a.outcome] || a.outcome;
      const what = actor && actor.kind === "app" ? "sent the technicians" : "sent the end user";
      return `${what} “${a.name}” (${a.bytes} bytes): ${outcome}`;
    }
    case "clipboard":
      return actor && actor.kind === "app"
        ? `copied ${a.bytes} bytes of text to the technicians`
        : `put ${a.bytes} bytes of copied text on the end user's clipboard`;
    case "recording_started":
      return `recording ${a.recording} started (${a.width}×${a.height})`;
    case "recording_viewed":
      return `watched recording ${a.recording}`;
    case "recording_deleted":
      return `recording ${a.recording} deleted: older than the channel keeps recordings`;
    default:
      return String(a.action).replaceAll("_", " ");
  }
}

export function technicianName(id) {
  const t = state.technicians.get(id);
  return t ? t.display_name || t.username : `technician ${id}`;
}

export function fillSelect(select, options) {
  select.replaceChildren(
    ...options.map(([value, label]) => {
      const o = document.createElement("option");
      o.value = String(value);
      o.textContent = label;
      return o;
    }),
  );
}
