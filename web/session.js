// The session: the sign-in and registration form, starting a session (lists, socket,
// polls) and ending one (sign out, a lost refresh token, a disabled account).

import { ApiError, api, auth, cancelRefresh, scheduleRefresh } from "./api.js";
import { clearStaged } from "./attachments.js";
import { $, toast } from "./dom.js";
import { closeMenu } from "./menu.js";
import { presenceIsLive, resetPresence } from "./presence.js";
import { connect, disconnect, startSocket } from "./socket.js";
import { loadConversations, loadGroups, refreshPresence, renderNow, state } from "./store.js";
import { resetTyping } from "./typing.js";
import { clearMessagePane } from "./view-messages.js";
import { loadBlocked, resetProfile } from "./view-profile.js";

const PRESENCE_POLL_MS = 30_000;
const LIST_POLL_MS = 60_000;

let pollTimers = [];

export function showAuth(notice = "") {
  $("#chat-view").hidden = true;
  $("#auth-view").hidden = false;
  $("#auth-notice").hidden = !notice;
  $("#auth-notice").textContent = notice;
  $("#auth-password").value = "";
  setAuthMode("login");
  $("#auth-username").focus();
}

export function startSession() {
  state.me = auth.data.user;
  state.convs.clear();
  state.activeId = null;
  clearMessagePane();
  $("#auth-view").hidden = true;
  $("#chat-view").hidden = false;
  $("#chat-view").classList.remove("show-conversation");
  renderNow();
  scheduleRefresh();
  startSocket();
  // Groups first so the list shows their names; the list; then the socket (which syncs everything known).
  loadBlocked().catch(() => {});
  loadGroups().catch(() => {})
    .then(() => loadConversations())
    .catch((err) => { if (err instanceof ApiError) toast(err.message); })
    .finally(() => { connect(); refreshPresence().catch(() => {}); });
  pollTimers.forEach(clearInterval);
  pollTimers = [
    // Only while the server has not shown it pushes presence (presence.js).
    setInterval(() => { if (!presenceIsLive()) refreshPresence().catch(() => {}); }, PRESENCE_POLL_MS),
    setInterval(() => { if (document.visibilityState === "visible") loadConversations().catch(() => {}); }, LIST_POLL_MS),
  ];
}

export function endSession() {
  disconnect();
  cancelRefresh();
  pollTimers.forEach(clearInterval);
  pollTimers = [];
  resetPresence();
  for (const conv of state.convs.values()) for (const p of conv.pending) clearTimeout(p.timer);
  resetTyping();
  closeMenu();
  resetProfile();
  state.convs.clear();
  state.users.clear();
  state.groups.clear();
  state.activeId = null;
  state.me = null;
  clearMessagePane();
  $("#conversation-list").replaceChildren();
  clearStaged();
  document.title = "GoChat";
}

export function sessionLost(notice) {
  if (!state.me) return;
  endSession();
  auth.clear();
  showAuth(notice);
}

async function logout() {
  const data = auth.data;
  endSession();
  auth.clear();
  showAuth("You have signed out.");
  if (data) {
    // Best effort: the refresh token stops working server-side.
    fetch("/api/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${data.access}` },
      body: JSON.stringify({ refresh: data.refresh }),
    }).catch(() => {});
  }
}

let authMode = "login";

function setAuthMode(mode) {
  authMode = mode;
  $("#tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("#tab-register").setAttribute("aria-selected", String(mode === "register"));
  $("#nickname-field").hidden = mode !== "register";
  $("#auth-hint").hidden = mode !== "register";
  $("#auth-submit").textContent = mode === "login" ? "Sign in" : "Create account";
  $("#auth-password").setAttribute("autocomplete", mode === "login" ? "current-password" : "new-password");
  $("#auth-error").textContent = "";
}

async function submitAuth(ev) {
  ev.preventDefault();
  const username = $("#auth-username").value.trim();
  const password = $("#auth-password").value;
  const nickname = $("#auth-nickname").value.trim();
  const errorEl = $("#auth-error");
  errorEl.textContent = "";
  if (!username || !password) {
    errorEl.textContent = "Enter a username and a password.";
    return;
  }
  const button = $("#auth-submit");
  button.disabled = true;
  try {
    if (authMode === "register") {
      const body = { username, password };
      if (nickname) body.nickname = nickname;
      await api("/api/auth/register", { method: "POST", body, anonymous: true });
    }
    const data = await api("/api/auth/login", { method: "POST", body: { username, password }, anonymous: true });
    auth.save({ access: data.access, refresh: data.refresh, user: data.user });
    $("#auth-password").value = "";
    $("#auth-notice").hidden = true;
    startSession();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) errorEl.textContent = "Wrong username or password.";
    else if (err instanceof ApiError && err.status === 429) errorEl.textContent = "Too many attempts. Wait a minute and try again.";
    else errorEl.textContent = err instanceof ApiError ? err.message : "Cannot reach the server. Try again.";
  } finally {
    button.disabled = false;
  }
}

export function wireSession() {
  $("#tab-login").addEventListener("click", () => setAuthMode("login"));
  $("#tab-register").addEventListener("click", () => setAuthMode("register"));
  $("#auth-form").addEventListener("submit", submitAuth);
  $("#logout").addEventListener("click", logout);
}
