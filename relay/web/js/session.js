// ---- One session: actions and history --------------------------------------------------------

import { $, api, state } from "./api.js";
import { loadChat } from "./chat.js";
import { copy } from "./create.js";
import { ACTION_HELP, describe, fillSelect, technicianName } from "./directory.js";
import { reload, renderSessions } from "./lists.js";
import { closePlayer, loadRecordings } from "./recordings.js";
import { openViewer } from "./viewer.js";

export async function select(id) {
  if (state.selected !== id) closePlayer();
  state.selected = id;
  renderSessions();
  const session = state.sessions.find((s) => s.id === id);
  if (session) renderDetail(session);
}

export function closeDetail() {
  state.selected = null;
  closePlayer();
  $("detail").hidden = true;
}

function actionButton(label, run, options = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (options.className) b.className = options.className;
  b.disabled = Boolean(options.disabled);
  if (options.title) b.title = options.title;
  b.addEventListener("click", async () => {
    $("desk-error").textContent = "";
    try {
      await run();
      await reload();
    } catch (e) {
      $("desk-error").textContent = e.message;
    }
  });
  return b;
}

export function renderDetail(s) {
  // Reloads come with every live event: rebuild only what changed, so that a button is not
  // replaced under the technician's pointer.
  const shown = JSON.stringify(s);
  // (Recordings start, end and are watched without the session changing: its history and
  // recordings are asked for at every update.)
  loadAudit(s.id);
  loadRecordings(s.id);
  if (!$("detail").hidden && $("detail").dataset.shown === shown) return;
  $("detail").dataset.shown = shown;
  $("detail").hidden = false;
  $("detail-title").textContent = `${s.name || `Session ${s.id}`} — ${s.deleted ? "deleted" : s.state.replace("_", " ")}`;
  renderComputer(s);
  renderPeople(s);
  loadChat(s);
  if (s.deleted) {
    // Only its history is left.
    $("actions").replaceChildren();
    return;
  }
  const live = s.state !== "closed" && s.state !== "expired";
  const post = (what, body) => () => api("POST", `/sessions/${s.id}/${what}`, body);
  const buttons = [
    actionButton("Start remote session", post("remote", { capabilities: "view,control,files,clipboard" }), {
      className: "primary",
      disabled: s.state !== "active",
      title: "Asks the end user to allow viewing and control",
    }),
    actionButton("Ask to view only", post("remote", { capabilities: "view" }), { disabled: s.state !== "active" }),
    actionButton("View in browser", async () => openViewer(s), {
      disabled: s.state !== "active",
      title: "Shows the end user's screen here once they allowed viewing",
    }),
  ];
  if (s.link) buttons.push(actionButton("Copy link", () => copy(s.link, $("copied"), "The invite link is copied.")));
  if (s.pin) buttons.push(actionButton("Copy PIN", () => copy(s.pin, $("copied"), "The PIN is copied.")));
  if (live) {
    const on = [s.assigned_technician_id, ...s.invited_technician_ids].filter((t) => t !== null);
    const others = (exclude) => technicianOptions(s).filter(([id]) => !exclude.includes(id));
    buttons.push(
      actionButton("Assign…", async () =>
        pick("Assign to", others(s.assigned_technician_id === null ? [] : [s.assigned_technician_id]), ACTION_HELP.assign, (v) =>
          post("assign", { technician_id: v })(),
        ),
      ),
      actionButton(
        "Transfer to technician…",
        async () => pick("Transfer to", others([s.assigned_technician_id]), ACTION_HELP.transfer, (v) => post("transfer", { technician_id: v })()),
        { disabled: s.assigned_technician_id === null, title: s.assigned_technician_id === null ? "Nobody owns this session: use Assign" : "" },
      ),
      actionButton("Transfer to channel…", async () =>
        pick(
          "Move to the queue of",
          [...state.channels.values()].filter((c) => c.id !== s.channel_id).map((c) => [c.id, c.name]),
          ACTION_HELP.channel,
          (v) => post("transfer", { channel_id: v })(),
        ),
      ),
      actionButton("Invite…", async () => pick("Invite", others(on), ACTION_HELP.invite, (v) => post("invite", { technician_id: v })())),
      actionButton("Release", post("release"), { disabled: s.assigned_technician_id === null }),
      actionButton(
        "Close",
        async () => {
          const connected = s.state === "active" || s.state === "in_queue";
          const question = connected
            ? "Close this session? The end user's support app is disconnected at once and the code stops working."
            : "Close this session? Its code stops working.";
          if (!window.confirm(question)) return;
          await post("close")();
        },
        { className: "danger" },
      ),
    );
  }
  buttons.push(
    actionButton(
      "Delete",
      async () => {
        if (!window.confirm("Delete this session from the lists? Its history is kept.")) return;
        await api("DELETE", `/sessions/${s.id}`);
        closeDetail();
      },
      { className: "danger" },
    ),
  );
  $("actions").replaceChildren(...buttons);
}

// The end user's computer, as its support app reported it.
function renderComputer(s) {
  const rows = [];
  if (s.agent) {
    rows.push(["Computer", `${s.agent.host_name} — ${s.agent.os}`]);
    if (s.machine) {
      const m = s.machine;
      rows.push(["Signed in", m.user_name || "—"]);
      rows.push(["Processor", m.cpu_threads ? `${m.cpu || "—"} (${m.cpu_threads} threads)` : m.cpu || "—"]);
      rows.push(["Memory", memoryText(m.memory_bytes)]);
      rows.push(["Up", `${durationText(Date.now() - Date.parse(m.booted_at))} (since ${new Date(m.booted_at).toLocaleString()})`]);
    }
    rows.push(["Support app", s.agent.app_version]);
  }
  const items = rows.flatMap(([label, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  });
  $("computer").replaceChildren(...items);
}

function memoryText(bytes) {
  if (!bytes) return "—";
  const gib = bytes / 1024 ** 3;
  if (gib >= 10 || Math.abs(gib - Math.round(gib)) < 0.05) return `${Math.round(gib)} GiB`;
  if (gib >= 1) return `${gib.toFixed(1)} GiB`;
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}

// "3 d 4 h", "2 h 5 min", "12 min".
function durationText(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60000));
  const [d, h, m] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60), minutes % 60];
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min`;
}

// Who is on the session; the owner (or an admin) may take an invited technician off it, and an
// invited technician may leave.
function renderPeople(s) {
  const live = !s.deleted && s.state !== "closed" && s.state !== "expired";
  const mayRemove = state.me && (state.me.role === "admin" || state.me.id === s.assigned_technician_id);
  const owner = document.createElement("p");
  owner.textContent = `Owner: ${s.assigned_technician_id === null ? "nobody (in the queue)" : technicianName(s.assigned_technician_id)}`;
  const items = s.invited_technician_ids.map((id) => {
    const li = document.createElement("li");
    li.dataset.technician = String(id);
    li.append(`${technicianName(id)} `);
    const self = state.me && id === state.me.id;
    if (live && (mayRemove || self)) {
      li.append(
        actionButton(
          self ? "Leave" : "Remove",
          async () => {
            await api("DELETE", `/sessions/${s.id}/invited/${id}`);
          },
          { title: self ? "Leave this session" : `Take ${technicianName(id)} off this session; what the end user allowed them ends` },
        ),
      );
    }
    return li;
  });
  const list = document.createElement("ul");
  list.append(...items);
  const invited = document.createElement("p");
  invited.textContent = items.length ? "Invited:" : "Invited: nobody";
  $("people").replaceChildren(owner, invited, ...(items.length ? [list] : []));
}

function technicianOptions(s) {
  const channel = state.channels.get(s.channel_id);
  const members = channel ? channel.member_ids : [...state.technicians.keys()];
  return members.filter((id) => !(state.technicians.get(id) || {}).disabled).map((id) => [id, technicianName(id)]);
}

// A small inline chooser under the actions, saying what the action does: resolves once the
// technician picks or cancels.
export function pick(label, options, help, apply) {
  return new Promise((resolve, reject) => {
    if (options.length === 0) {
      reject(new Error(`Nobody to choose for "${label}": everyone who could is already on the session.`));
      return;
    }
    $("pick-label").textContent = label;
    $("pick-help").textContent = help;
    fillSelect($("pick-select"), options);
    $("pick").hidden = false;
    $("pick-select").focus();
    const done = () => {
      $("pick").hidden = true;
      $("pick-ok").onclick = null;
      $("pick-cancel").onclick = null;
    };
    $("pick-ok").onclick = () => {
      done();
      apply(Number($("pick-select").value)).then(resolve, reject);
    };
    $("pick-cancel").onclick = () => {
      done();
      resolve();
    };
  });
}

async function loadAudit(id) {
  let events;
  try {
    events = await api("GET", `/sessions/${id}/events`);
  } catch (e) {
    return;
  }
  if (state.selected !== id) return;
  const items = events.map((e) => {
    const li = document.createElement("li");
    const who = e.actor.kind === "technician" ? technicianName(e.actor.id) : e.actor.kind === "app" ? "support app" : "relay";
    const change = e.from && e.from !== e.to ? ` (${e.from} → ${e.to})` : "";
    li.textContent = `${new Date(e.at).toLocaleTimeString()} — ${who}: ${describe(e.action, e.actor)}${change}`;
    return li;
  });
  $("audit").replaceChildren(...items);
}
