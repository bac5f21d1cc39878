// ---- Administration (admins): technicians and channels ------------------------------------------

import { $, api, state } from "./api.js";
import { fillSelect, loadDirectory, technicianName } from "./directory.js";
import { cell } from "./lists.js";
import { pick, select } from "./session.js";

export function renderAdmin() {
  if (state.settings && document.activeElement !== $("settings-organisation")) $("settings-organisation").value = state.settings.organisation;
  if (state.settings) $("settings-second-factor").checked = state.settings.require_second_factor;
  $("technicians").tBodies[0].replaceChildren(...[...state.technicians.values()].map(technicianRow));
  $("channels").tBodies[0].replaceChildren(...[...state.channels.values()].map(channelRow));
}

function technicianStatus(t) {
  if (t.disabled) return "disabled";
  if (t.must_change_password) return "active (has a one-time password)";
  if (t.second_factor_required) return "active (must set up two-step sign-in)";
  if (t.second_factor) return "active, two-step sign-in";
  return "active";
}

// One technician: enable or disable, make admin or technician, give a new one-time password.
function technicianRow(t) {
  const channelsOf = [...state.channels.values()].filter((c) => c.member_ids.includes(t.id)).map((c) => c.name);
  const tr = document.createElement("tr");
  tr.dataset.technician = t.username;
  const self = state.me && t.id === state.me.id;
  const button = (label, change, options = {}) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.disabled = Boolean(options.disabled);
    if (options.title) b.title = options.title;
    if (options.className) b.className = options.className;
    b.addEventListener("click", change);
    return b;
  };
  const patch = (body) => () => adminDo(() => api("PATCH", `/technicians/${t.id}`, body));
  const actions = document.createElement("div");
  actions.className = "row-actions";
  actions.append(
    t.disabled
      ? button("Enable", patch({ disabled: false }))
      : button(
          "Disable",
          () => {
            if (window.confirm(`Disable ${t.username}? They are signed out at once and leave every live session.`)) patch({ disabled: true })();
          },
          { className: "danger", disabled: self, title: self ? "You cannot disable your own account" : "" },
        ),
    button(t.role === "admin" ? "Make technician" : "Make admin", patch({ role: t.role === "admin" ? "technician" : "admin" })),
  );
  // A reset: a new one-time password typed inline, never shown again.
  const reset = document.createElement("span");
  reset.className = "inline-pick";
  const password = document.createElement("input");
  password.type = "password";
  password.autocomplete = "new-password";
  password.placeholder = "new one-time password";
  password.setAttribute("aria-label", `New one-time password for ${t.username}`);
  password.disabled = self;
  reset.append(
    password,
    button(
      "Reset password",
      () => {
        if (password.value) patch({ password: password.value })();
      },
      { disabled: self, title: self ? "Change your own password from the header" : "" },
    ),
  );
  actions.append(reset);
  if (t.second_factor && !self) {
    actions.append(
      button("Reset two-step sign-in", () => {
        if (window.confirm(`Remove ${t.username}'s two-step sign-in (a lost phone)? They are signed out and set it up again.`)) {
          patch({ reset_second_factor: true })();
        }
      }),
    );
  }
  const wrapped = document.createElement("td");
  wrapped.append(actions);
  tr.append(
    cell(t.username),
    cell(t.display_name),
    cell(t.role),
    cell(technicianStatus(t), t.disabled ? "bad" : ""),
    cell(channelsOf.join(", ") || "—"),
    wrapped,
  );
  return tr;
}

export async function saveSettings(event) {
  event.preventDefault();
  $("settings-saved").textContent = "";
  const organisation = $("settings-organisation").value.trim();
  if (await adminDo(() => api("PATCH", "/settings", { organisation }))) {
    $("settings-saved").textContent = "Saved: end users see it from their next prompt or page.";
  }
}

export async function saveSecondFactorSetting() {
  $("require-saved").textContent = "";
  const require_second_factor = $("settings-second-factor").checked;
  if (await adminDo(() => api("PATCH", "/settings", { require_second_factor }))) {
    $("require-saved").textContent = require_second_factor ? "Required from every technician's next step." : "No longer required.";
  } else {
    $("settings-second-factor").checked = !require_second_factor;
  }
}

// The channel's file limit is shown and set in MB (1024 × 1024 bytes).
const MB = 1024 * 1024;

function channelRow(c) {
  const tr = document.createElement("tr");
  tr.dataset.channel = c.name;
  const number = (value, min) => {
    const input = document.createElement("input");
    input.type = "number";
    input.min = String(min);
    input.value = String(value);
    return input;
  };
  const expiry = number(Math.round(c.session_expiry_secs / 3600), 1);
  const consent = number(c.consent_timeout_secs, 5);
  const files = number(Math.round(c.max_file_bytes / MB), 0);
  // Recorded: a tick box, and how many days recordings are kept (0: as long as the session).
  const record = document.createElement("input");
  record.type = "checkbox";
  record.checked = c.record_sessions;
  record.setAttribute("aria-label", `Record remote sessions of ${c.name}`);
  const retention = number(c.recording_retention_days, 0);
  retention.setAttribute("aria-label", `Days ${c.name} keeps recordings`);
  const recording = document.createElement("td");
  recording.className = "recording-setting";
  const days = document.createElement("label");
  days.className = "inline";
  days.append(retention, " days");
  recording.append(record, days);
  const save = document.createElement("button");
  save.type = "button";
  save.textContent = "Save";
  save.addEventListener("click", () =>
    adminDo(() =>
      api("PATCH", `/channels/${c.id}`, {
        session_expiry_secs: Number(expiry.value) * 3600,
        consent_timeout_secs: Number(consent.value),
        max_file_bytes: Number(files.value) * MB,
        record_sessions: record.checked,
        recording_retention_days: Number(retention.value),
      }),
    ),
  );
  const members = document.createElement("td");
  const names = document.createElement("span");
  names.className = "names";
  if (c.member_ids.length === 0) names.textContent = "—";
  for (const id of c.member_ids) {
    const member = document.createElement("span");
    member.className = "member";
    member.append(technicianName(id));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.title = `Remove ${technicianName(id)} from ${c.name}`;
    remove.setAttribute("aria-label", remove.title);
    remove.addEventListener("click", () => {
      const question = `Remove ${technicianName(id)} from ${c.name}? They leave its live sessions (sessions they own go to its queue).`;
      if (window.confirm(question)) adminDo(() => api("DELETE", `/channels/${c.id}/members/${id}`));
    });
    member.append(remove);
    names.append(member);
  }
  members.append(names);
  const pick = document.createElement("div");
  pick.className = "inline-pick";
  const select = document.createElement("select");
  fillSelect(
    select,
    [...state.technicians.values()].filter((t) => !c.member_ids.includes(t.id)).map((t) => [t.id, technicianName(t.id)]),
  );
  const add = document.createElement("button");
  add.type = "button";
  add.textContent = "Add member";
  add.disabled = select.options.length === 0;
  add.addEventListener("click", () =>
    adminDo(() => api("POST", `/channels/${c.id}/members`, { technician_id: Number(select.value) })),
  );
  pick.append(select, add);
  members.append(pick);
  const wrap = (input) => {
    const td = document.createElement("td");
    td.append(input);
    return td;
  };
  const actions = document.createElement("td");
  actions.append(save);
  tr.append(cell(c.name), wrap(expiry), wrap(consent), wrap(files), recording, members, actions);
  return tr;
}

// Runs an admin change, then shows the directory as the relay now has it (or the relay's error).
async function adminDo(change) {
  $("admin-error").textContent = "";
  try {
    await change();
  } catch (e) {
    $("admin-error").textContent = e.message;
    return false;
  }
  await loadDirectory();
  return true;
}

export async function createTechnician(event) {
  event.preventDefault();
  const body = {
    username: $("tech-username").value.trim(),
    display_name: $("tech-name").value.trim(),
    password: $("tech-password").value,
    role: $("tech-role").value,
  };
  if (await adminDo(() => api("POST", "/technicians", body))) {
    $("technician-form").reset();
  }
}

export async function createChannel(event) {
  event.preventDefault();
  const body = {
    name: $("channel-name").value.trim(),
    session_expiry_secs: Number($("channel-expiry").value) * 3600,
    consent_timeout_secs: Number($("channel-consent").value),
    max_file_bytes: Number($("channel-files").value) * MB,
    record_sessions: $("channel-record").checked,
    recording_retention_days: Number($("channel-retention").value),
  };
  if (await adminDo(() => api("POST", "/channels", body))) {
    $("channel-form").reset();
  }
}
