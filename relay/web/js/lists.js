// ---- Session lists ----------------------------------------------------------------------------

import { renderAdmin } from "./admin.js";
import { $, api, state } from "./api.js";
import { spacedPin } from "./create.js";
import { capabilitiesText, technicianName } from "./directory.js";
import { closeDetail, renderDetail, select } from "./session.js";
import { closeViewer } from "./viewer.js";

export async function showList(list) {
  state.list = list;
  for (const b of $("lists").children) b.setAttribute("aria-current", String(b.dataset.list === JSON.stringify(list)));
  closeViewer();
  $("admin").hidden = list.kind !== "admin";
  $("desk-lists").hidden = list.kind === "admin";
  if (list.kind === "admin") {
    renderAdmin();
    return;
  }
  const titles = { home: "Home", deleted: "Deleted sessions (history kept)" };
  $("list-title").textContent = titles[list.kind] || `Channel: ${(state.channels.get(list.id) || {}).name || list.id}`;
  await reload();
}

export async function reload() {
  if (state.list.kind === "admin") return;
  try {
    const paths = { home: "/sessions?scope=home", deleted: "/sessions?scope=deleted" };
    const path = paths[state.list.kind] || `/channels/${state.list.id}/sessions`;
    state.sessions = await api("GET", path);
    $("desk-error").textContent = "";
  } catch (e) {
    $("desk-error").textContent = e.message;
    return;
  }
  renderSessions();
  if (state.selected !== null) {
    const still = state.sessions.find((s) => s.id === state.selected);
    if (still) renderDetail(still);
    else closeDetail();
  }
}

export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// Consent is per technician: each grant says whom the end user allowed to do what, and a
// request still waiting says so — never the same words for asked and allowed.
function consentText(consent) {
  const grants = consent.grants
    .map((g) => `${technicianName(g.technician_id)} may ${capabilitiesText(g.capabilities)}`)
    .join("; ");
  switch (consent.status) {
    case "pending": {
      const asked = `waiting for the end user: ${technicianName(consent.pending.requested_by)} asks to ${capabilitiesText(consent.capabilities)}`;
      return grants ? `${grants}; ${asked}` : asked;
    }
    case "granted":
      return grants;
    case "suspended":
      return "app reconnecting (consent kept)";
    default:
      return "not shared";
  }
}

export function renderSessions() {
  const rows = state.sessions.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.id = String(s.id);
    tr.setAttribute("aria-selected", String(s.id === state.selected));
    const name = cell(s.name || `Session ${s.id}`);
    const badge = document.createElement("span");
    badge.className = `state ${s.state}`;
    badge.textContent = s.state.replace("_", " ");
    const stateCell = document.createElement("td");
    stateCell.append(badge);
    const people = [s.assigned_technician_id, ...s.invited_technician_ids].filter((t) => t !== null).map(technicianName);
    const computer = s.agent ? `${s.agent.host_name} · ${s.agent.os}` : "not connected";
    tr.append(
      name,
      stateCell,
      cell(s.pin ? spacedPin(s.pin) : s.link ? "link" : "—", s.pin ? "code" : "muted"),
      cell(people.join(", ") || "unassigned"),
      cell(computer, s.agent ? "" : "muted"),
      cell(consentText(s.consent)),
      cell(new Date(s.expires_at).toLocaleString()),
    );
    tr.addEventListener("click", () => select(s.id));
    return tr;
  });
  $("sessions").tBodies[0].replaceChildren(...rows);
  $("empty").hidden = rows.length > 0;
}
