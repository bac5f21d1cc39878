// ---- Sign in / out ------------------------------------------------------------------------

import { $, api, state } from "./api.js";
import { loadDirectory } from "./directory.js";
import { followEvents, setLive } from "./events.js";
import { showList } from "./lists.js";
import { showSecondFactor } from "./second-factor.js";
import { closeViewer } from "./viewer.js";

export async function signIn(event) {
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
export async function proceed(me, password) {
  if (me.must_change_password) askForPassword(me, password);
  else if (me.second_factor_required) showSecondFactor(me);
  else await enterDesk(me);
}

export function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem("deskline.token", token);
  else sessionStorage.removeItem("deskline.token");
}

// The password form: forced after signing in with a one-time password (the first admin's
// printed one, one an administrator gave), or opened from the header to change one's own.
// `known` is the password just typed at sign-in, so it is not asked twice.
export function askForPassword(me, known) {
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

export async function changePassword(event) {
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

export function cancelPasswordChange() {
  $("password-change").hidden = true;
  $("desk").hidden = false;
}

export async function signOutClicked() {
  // The relay revokes the token; the page forgets it either way.
  try {
    await api("POST", "/logout");
  } catch (e) {
    // Already expired or unreachable: nothing more to revoke from here.
  }
  signOut();
}

export function signOut(message) {
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

export async function enterDesk(me) {
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
