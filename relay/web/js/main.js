// ---- Start ------------------------------------------------------------------------------------

import { createChannel, createTechnician, saveSecondFactorSetting, saveSettings } from "./admin.js";
import { $, api, state } from "./api.js";
import { sendChat } from "./chat.js";
import { copy, createSession } from "./create.js";
import { confirmSecondFactor, renewRecoveryCodes, showSecondFactor, startSecondFactor, turnSecondFactorOff } from "./second-factor.js";
import { askForPassword, cancelPasswordChange, changePassword, enterDesk, proceed, signIn, signOut, signOutClicked } from "./signin.js";
import { closePlayer, followLog } from "./recordings.js";
import { setupViewer } from "./viewer.js";

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signIn);
  $("create-form").addEventListener("submit", createSession);
  $("chat-form").addEventListener("submit", sendChat);
  $("player-video").addEventListener("timeupdate", followLog);
  $("player-close").addEventListener("click", closePlayer);
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
