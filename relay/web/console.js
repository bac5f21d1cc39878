// Deskline web console: the technician's service desk in the browser.
//
// Plain JavaScript against the relay's HTTP API (/api/v1), no build step and no framework:
// the relay embeds these three files. The bearer token lives in sessionStorage (this tab
// only). Everything shown is set through textContent, never parsed as HTML. Live updates come
// from GET /api/v1/events (Server-Sent Events), read with fetch so that the token travels in
// the Authorization header (EventSource cannot send one) and never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem("deskline.token"),
  me: null,
  technicians: new Map(), // id -> technician
  channels: new Map(), // id -> channel
  list: { kind: "home" }, // or { kind: "channel", id } or { kind: "admin" }
  sessions: [],
  selected: null, // session id
  events: null, // AbortController of the live stream
  passwordKnown: null, // the one-time password just typed at sign-in, until replaced
  settings: null, // relay-wide settings (the organisation)
};

// ---- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", "The relay cannot be reached. Check your connection and try again.");
  }
  const text = await response.text();
  let value = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch (e) {
    // Not the relay's JSON (a proxy's error page): the status line says what happened.
  }
  if (!response.ok) {
    const error = (value && value.error) || {};
    if (response.status === 401 && path !== "/login" && path !== "/logout") signOut("Your sign-in has expired. Please sign in again.");
    throw new ApiError(response.status, error.code || "error", error.message || `${response.status} ${response.statusText}`);
  }
  return value;
}

// ---- Sign in / out ------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const password = $("password").value;
    const body = { username: $("username").value, password };
    // Asked for once the relay says the account has a second factor.
    if (!$("signin-code-box").hidden) body.code = $("signin-code").value.trim();
    const { token, technician } = await api("POST", "/login", body);
    setToken(token);
    $("password").value = "";
    $("signin-code").value = "";
    $("signin-code-box").hidden = true;
    await proceed(technician, password);
  } catch (e) {
    if (e.code === "second_factor_required") {
      $("signin-code-box").hidden = false;
      $("signin-code").focus();
    } else if (e.code === "wrong_second_factor") {
      $("signin-code").value = "";
      $("signin-code").focus();
    }
    $("signin-error").textContent = e.message;
  }
}

// After signing in (or setting a password): what the account must do first, else the desk.
async function proceed(me, password) {
  if (me.must_change_password) askForPassword(me, password);
  else if (me.second_factor_required) showSecondFactor(me);
  else await enterDesk(me);
}

function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem("deskline.token", token);
  else sessionStorage.removeItem("deskline.token");
}

// The password form: forced after signing in with a one-time password (the first admin's
// printed one, one an administrator gave), or opened from the header to change one's own.
// `known` is the password just typed at sign-in, so it is not asked twice.
function askForPassword(me, known) {
  const forced = Boolean(me.must_change_password);
  state.passwordKnown = known || null;
  $("password-why").textContent = forced
    ? `${me.display_name || me.username}, your password was set by someone else and works only once: choose your own to continue.`
    : "Choose a new password. You stay signed in here; your other sign-ins end.";
  $("password-current-label").hidden = Boolean(known);
  $("password-current").required = !known;
  $("password-cancel").hidden = forced;
  $("password-error").textContent = "";
  $("password-form").reset();
  $("signin").hidden = true;
  $("desk").hidden = true;
  $("password-change").hidden = false;
  $("signout").hidden = false;
  (known ? $("password-new") : $("password-current")).focus();
}

async function changePassword(event) {
  event.preventDefault();
  $("password-error").textContent = "";
  if ($("password-new").value !== $("password-repeat").value) {
    $("password-error").textContent = "The two new passwords differ.";
    return;
  }
  try {
    const current = state.passwordKnown || $("password-current").value;
    const { token, technician } = await api("POST", "/me/password", { current_password: current, new_password: $("password-new").value });
    setToken(token);
    state.passwordKnown = null;
    $("password-form").reset();
    $("password-change").hidden = true;
    await proceed(technician, null);
  } catch (e) {
    $("password-error").textContent = e.message;
  }
}

function cancelPasswordChange() {
  $("password-change").hidden = true;
  $("desk").hidden = false;
}

async function signOutClicked() {
  // The relay revokes the token; the page forgets it either way.
  try {
    await api("POST", "/logout");
  } catch (e) {
    // Already expired or unreachable: nothing more to revoke from here.
  }
  signOut();
}

function signOut(message) {
  setToken(null);
  state.me = null;
  state.passwordKnown = null;
  state.list = { kind: "home" };
  if (state.events) state.events.abort();
  state.events = null;
  setLive(false);
  closeViewer();
  $("live").hidden = true;
  $("desk").hidden = true;
  $("password-change").hidden = true;
  $("second-factor-panel").hidden = true;
  $("signout").hidden = true;
  $("change-password").hidden = true;
  $("second-factor").hidden = true;
  $("signin-code-box").hidden = true;
  $("whoami").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("username").focus();
}

async function enterDesk(me) {
  state.me = me;
  $("whoami").textContent = `${me.display_name || me.username} (${me.role})`;
  $("signin").hidden = true;
  $("password-change").hidden = true;
  $("second-factor-panel").hidden = true;
  $("signout").hidden = false;
  $("change-password").hidden = false;
  $("second-factor").hidden = false;
  $("live").hidden = false;
  $("desk").hidden = false;
  await loadDirectory();
  await showList(state.list);
  followEvents();
}

// ---- Two-step sign-in (the second factor) ----------------------------------------------------

// The panel: forced when an administrator requires a second factor and the account has none,
// or opened from the header to set it up, renew recovery codes or turn it off.
function showSecondFactor(me) {
  state.me = me;
  const forced = Boolean(me.second_factor_required);
  const name = me.display_name || me.username;
  $("sf-why").textContent = forced
    ? `${name}, an administrator requires two-step sign-in: set it up to continue.`
    : "Two-step sign-in asks for a code from an app on your phone each time you sign in, so a password alone is not enough to get in.";
  $("sf-status").textContent = me.second_factor ? "Two-step sign-in is on." : "Two-step sign-in is off.";
  for (const form of ["sf-start-form", "sf-confirm-form", "sf-renew-form", "sf-off-form"]) $(form).reset();
  $("sf-start-form").hidden = Boolean(me.second_factor);
  $("sf-manage").hidden = !me.second_factor;
  $("sf-enrol").hidden = true;
  $("sf-codes").hidden = true;
  $("sf-error").textContent = "";
  $("sf-close").hidden = forced;
  $("signin").hidden = true;
  $("desk").hidden = true;
  $("password-change").hidden = true;
  $("second-factor-panel").hidden = false;
  $("signout").hidden = false;
  (me.second_factor ? $("sf-renew-code") : $("sf-password")).focus();
}

// Runs a step of the panel, showing the relay's error beside it.
async function secondFactorDo(step) {
  $("sf-error").textContent = "";
  try {
    await step();
  } catch (e) {
    $("sf-error").textContent = e.message;
  }
}

// The relay's QR code (an SVG it drew) placed in the page. Parsed as XML, never as HTML, and
// only the elements a QR code is drawn with are kept.
function showQr(svgText) {
  const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml").documentElement;
  const drawn = [parsed, ...parsed.querySelectorAll("*")].every((e) => ["svg", "rect", "path"].includes(e.localName));
  $("sf-qr").replaceChildren(...(parsed.localName === "svg" && drawn ? [document.importNode(parsed, true)] : []));
}

async function startSecondFactor(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const enrolment = await api("POST", "/me/second-factor", { password: $("sf-password").value });
    $("sf-start-form").reset();
    showQr(enrolment.qr_svg);
    $("sf-secret").textContent = enrolment.secret.match(/.{1,4}/g).join(" ");
    $("sf-start-form").hidden = true;
    $("sf-enrol").hidden = false;
    $("sf-confirm-code").focus();
  });
}

async function confirmSecondFactor(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const confirmed = await api("POST", "/me/second-factor/confirm", { code: $("sf-confirm-code").value.trim() });
    setToken(confirmed.token);
    state.me = confirmed.technician;
    $("sf-enrol").hidden = true;
    $("sf-qr").replaceChildren();
    $("sf-status").textContent = "Two-step sign-in is on. Your other sign-ins have ended.";
    showRecoveryCodes(confirmed.recovery_codes);
  });
}

function showRecoveryCodes(codes) {
  $("sf-codes-list").replaceChildren(
    ...codes.map((code) => {
      const li = document.createElement("li");
      li.textContent = code;
      return li;
    }),
  );
  $("sf-codes-copied").textContent = "";
  $("sf-manage").hidden = true;
  $("sf-close").hidden = true;
  $("sf-codes").hidden = false;
  $("sf-codes-done").focus();
}

async function renewRecoveryCodes(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const { recovery_codes } = await api("POST", "/me/second-factor/recovery-codes", { code: $("sf-renew-code").value.trim() });
    $("sf-renew-form").reset();
    showRecoveryCodes(recovery_codes);
  });
}

async function turnSecondFactorOff(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const body = { password: $("sf-off-password").value, code: $("sf-off-code").value.trim() };
    showSecondFactor(await api("POST", "/me/second-factor/disable", body));
  });
}

// ---- Technicians and channels ---------------------------------------------------------------

async function loadDirectory() {
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

function capabilitiesText(c) {
  return c.control ? "view and control" : c.view ? "view" : "nothing";
}

const ACTION_HELP = {
  assign: "Assign makes them the owner of the session; the current owner, if any, leaves it.",
  transfer: "Transfer hands the session from its owner to them; the end user is asked again before they see the screen.",
  invite: "Invite adds them as a collaborator (three technicians at most); the end user is asked again before they see the screen.",
  channel: "The session leaves this channel for the other channel's queue; nobody owns it there until someone takes it.",
};

// One audit event's action in words.
function describe(a) {
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
    default:
      return String(a.action).replaceAll("_", " ");
  }
}

function technicianName(id) {
  const t = state.technicians.get(id);
  return t ? t.display_name || t.username : `technician ${id}`;
}

function fillSelect(select, options) {
  select.replaceChildren(
    ...options.map(([value, label]) => {
      const o = document.createElement("option");
      o.value = String(value);
      o.textContent = label;
      return o;
    }),
  );
}

// ---- Session lists ----------------------------------------------------------------------------

async function showList(list) {
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

async function reload() {
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

function cell(text, className) {
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

function renderSessions() {
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

// ---- One session: actions and history --------------------------------------------------------

async function select(id) {
  state.selected = id;
  renderSessions();
  const session = state.sessions.find((s) => s.id === id);
  if (session) renderDetail(session);
}

function closeDetail() {
  state.selected = null;
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

function renderDetail(s) {
  // Reloads come with every live event: rebuild only what changed, so that a button is not
  // replaced under the technician's pointer.
  const shown = JSON.stringify(s);
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
    loadAudit(s.id);
    return;
  }
  const live = s.state !== "closed" && s.state !== "expired";
  const post = (what, body) => () => api("POST", `/sessions/${s.id}/${what}`, body);
  const buttons = [
    actionButton("Start remote session", post("remote", { capabilities: "view_and_control" }), {
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
  loadAudit(s.id);
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
function pick(label, options, help, apply) {
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
    li.textContent = `${new Date(e.at).toLocaleTimeString()} — ${who}: ${describe(e.action)}${change}`;
    return li;
  });
  $("audit").replaceChildren(...items);
}

// ---- Chat --------------------------------------------------------------------------------------
//
// The selected session's chat: loaded with the session, followed through the live events, sent
// with POST /sessions/{id}/chat. It works before the end user allowed anything (the technician
// can say who they are). Lines are shown as text (textContent), never parsed as markup.

const chat = { session: null, lines: [], seen: new Set() };

function chatKey(m) {
  return `${m.at}|${m.technician_id ?? "end_user"}|${m.text}`;
}

// Where the technician can write, and why not.
async function loadChat(s) {
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
function chatReceived(m) {
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

async function sendChat(event) {
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
function showViewerChat(show) {
  $("viewer-chat").hidden = !show;
  $("viewer-chat-toggle").textContent = show ? "Hide chat" : "Chat";
  if (show) $("viewer-chat").append($("chat"));
}

function chatBackToDetail() {
  $("viewer-chat").hidden = true;
  $("chat-home").append($("chat"));
}

// ---- Administration (admins): technicians and channels ------------------------------------------

function renderAdmin() {
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

async function saveSettings(event) {
  event.preventDefault();
  $("settings-saved").textContent = "";
  const organisation = $("settings-organisation").value.trim();
  if (await adminDo(() => api("PATCH", "/settings", { organisation }))) {
    $("settings-saved").textContent = "Saved: end users see it from their next prompt or page.";
  }
}

async function saveSecondFactorSetting() {
  $("require-saved").textContent = "";
  const require_second_factor = $("settings-second-factor").checked;
  if (await adminDo(() => api("PATCH", "/settings", { require_second_factor }))) {
    $("require-saved").textContent = require_second_factor ? "Required from every technician's next step." : "No longer required.";
  } else {
    $("settings-second-factor").checked = !require_second_factor;
  }
}

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
  const save = document.createElement("button");
  save.type = "button";
  save.textContent = "Save";
  save.addEventListener("click", () =>
    adminDo(() =>
      api("PATCH", `/channels/${c.id}`, {
        session_expiry_secs: Number(expiry.value) * 3600,
        consent_timeout_secs: Number(consent.value),
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
  tr.append(cell(c.name), wrap(expiry), wrap(consent), members, actions);
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

async function createTechnician(event) {
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

async function createChannel(event) {
  event.preventDefault();
  const body = {
    name: $("channel-name").value.trim(),
    session_expiry_secs: Number($("channel-expiry").value) * 3600,
    consent_timeout_secs: Number($("channel-consent").value),
  };
  if (await adminDo(() => api("POST", "/channels", body))) {
    $("channel-form").reset();
  }
}

// ---- Creating sessions -------------------------------------------------------------------------

async function createSession(event) {
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
function spacedPin(pin) {
  return `${pin.slice(0, 3)} ${pin.slice(3)}`;
}

// Copies `text` and says so in `where` (for a few seconds). The asynchronous clipboard needs a
// secure, focused page; the older copy command works in more places; if both fail the text is
// shown selected so the technician can copy it by hand.
async function copy(text, where, done) {
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

// ---- Live updates -----------------------------------------------------------------------------

function setLive(on) {
  $("live").textContent = on ? "live" : "offline";
  $("live").className = on ? "live on" : "live off";
}

let reloadTimer = null;
function reloadSoon() {
  // Bursts of events (a transfer touches two channels) become one reload.
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(reload, 100);
}

async function followEvents() {
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

// ---- Viewing and controlling in the browser (WebRTC) ------------------------------------------
//
// The relay is the other WebRTC peer: it answers our offer (POST /sessions/{id}/webrtc, ICE
// candidates gathered first, no trickling), sends the end user's screen as an H.264 track and
// reads our data channel "control", on which both sides exchange the relay protocol's messages
// as JSON ({"Input": {...}}, {"ControlHandover": {"holder": 3}}, "KeyframeRequest", ...). The
// relay admits input only from the technician holding control, and only while the end user
// grants control.

const viewer = {
  pc: null,
  channel: null,
  session: null,
  holder: null, // who holds control
  canView: false, // the end user lets me see the screen (the relay's Access message)
  canControl: false, // ... and control it
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
async function openViewer(s, lostSince = null) {
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

function closeViewer() {
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
  viewer.paused = null;
  $("screen").srcObject = null;
  $("screen").classList.remove("controlling");
  $("viewer").hidden = true;
  $("desk").classList.remove("viewing");
  chatBackToDetail();
  if (wasOpen && state.list.kind !== "admin") $("desk-lists").hidden = false;
}

function send(message) {
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

function keyInput(event) {
  if (!controlling() || !event.code) return;
  event.preventDefault();
  const text = event.key.length === 1 ? event.key : null;
  send({ Input: { key: { code: event.code, press: event.type === "keydown" ? "down" : "up", text } } });
}

function setupViewer() {
  const video = $("screen");
  for (const type of ["mousemove", "mousedown", "mouseup"]) video.addEventListener(type, pointerInput);
  video.addEventListener("wheel", wheelInput, { passive: false });
  video.addEventListener("keydown", keyInput);
  video.addEventListener("keyup", keyInput);
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
      await api("POST", `/sessions/${viewer.session}/remote`, { capabilities: "view_and_control" });
      viewerStatus("asked the end user; waiting for their answer");
    } catch (e) {
      viewerStatus(e.message);
    }
  });
}

// ---- Start ------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signIn);
  $("create-form").addEventListener("submit", createSession);
  $("chat-form").addEventListener("submit", sendChat);
  $("technician-form").addEventListener("submit", createTechnician);
  $("channel-form").addEventListener("submit", createChannel);
  $("signout").addEventListener("click", signOutClicked);
  $("change-password").addEventListener("click", () => askForPassword(state.me, null));
  $("password-form").addEventListener("submit", changePassword);
  $("password-cancel").addEventListener("click", cancelPasswordChange);
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-second-factor").addEventListener("change", saveSecondFactorSetting);
  $("require-form").addEventListener("submit", (event) => event.preventDefault());
  $("second-factor").addEventListener("click", () => showSecondFactor(state.me));
  $("sf-start-form").addEventListener("submit", startSecondFactor);
  $("sf-confirm-form").addEventListener("submit", confirmSecondFactor);
  $("sf-renew-form").addEventListener("submit", renewRecoveryCodes);
  $("sf-off-form").addEventListener("submit", turnSecondFactorOff);
  $("sf-codes-done").addEventListener("click", () => enterDesk(state.me));
  $("sf-codes-copy").addEventListener("click", () =>
    copy([...$("sf-codes-list").children].map((li) => li.textContent).join("\n"), $("sf-codes-copied"), "Copied."),
  );
  $("sf-close").addEventListener("click", () => enterDesk(state.me));
  setupViewer();
  if (!state.token) {
    signOut();
    return;
  }
  try {
    await proceed(await api("GET", "/me"), null);
  } catch (e) {
    signOut(e.code === "unauthorized" ? "" : e.message);
  }
});
