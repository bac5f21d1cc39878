// ---- Two-step sign-in (the second factor) ----------------------------------------------------

import { $, api, state } from "./api.js";
import { setToken } from "./signin.js";

// The panel: forced when an administrator requires a second factor and the account has none,
// or opened from the header to set it up, renew recovery codes or turn it off.
export function showSecondFactor(me) {
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

export async function startSecondFactor(event) {
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

export async function confirmSecondFactor(event) {
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

export async function renewRecoveryCodes(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const { recovery_codes } = await api("POST", "/me/second-factor/recovery-codes", { code: $("sf-renew-code").value.trim() });
    $("sf-renew-form").reset();
    showRecoveryCodes(recovery_codes);
  });
}

export async function turnSecondFactorOff(event) {
  event.preventDefault();
  await secondFactorDo(async () => {
    const body = { password: $("sf-off-password").value, code: $("sf-off-code").value.trim() };
    showSecondFactor(await api("POST", "/me/second-factor/disable", body));
  });
}
