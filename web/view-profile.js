// Blocking and the profile panel: a person's panel (Message, Block/Unblock), mine (the
// people I blocked, each with Unblock), and the notice over a conversation with someone
// I blocked.

import { ApiError, api, auth, scheduleRefresh } from "./api.js";
import { $, fillAvatar, h, toast } from "./dom.js";
import { displayName, getUser, scheduleRender, singleCid, state, userName } from "./store.js";
import { openGroupPanel } from "./view-group.js";
import { openConversation } from "./view-messages.js";

const blocked = new Map();      // user id -> user: the people I blocked
let profileOf = null;           // the user id the profile dialog shows (my own: my blocked list)

export async function loadBlocked() {
  const found = new Map();
  let path = "/api/users/blocked";
  for (let page = 0; path && page < 50; page++) {
    const data = await api(path);
    for (const user of data.results || []) found.set(user.id, user);
    path = data.next ? (({ pathname, search }) => pathname + search)(new URL(data.next, location.href)) : null;
  }
  blocked.clear();
  for (const [id, user] of found) {
    blocked.set(id, user);
    if (!state.users.has(id)) state.users.set(id, user);
  }
  renderProfile();
  scheduleRender();
}

async function setBlocked(userId, block) {
  const name = userName(userId);
  try {
    await api(`/api/users/${encodeURIComponent(userId)}/block`, { method: block ? "POST" : "DELETE" });
    if (block) blocked.set(userId, state.users.get(userId) || { id: userId, username: "", nickname: "" });
    else blocked.delete(userId);
    toast(block ? `You blocked ${name}. They can no longer message you.` : `You unblocked ${name}.`);
  } catch (err) {
    toast(err instanceof ApiError ? err.message : "Something went wrong. Try again.");
  }
  renderProfile();
  scheduleRender();
}

/** The profile panel of a person (Message, Block/Unblock), or mine (the people I blocked). */
function openProfile(userId) {
  profileOf = userId;
  accountErrors.nickname = "";
  accountErrors.password = "";
  $("#profile-body").replaceChildren(); // nothing typed last time carries over
  renderProfile();
  const dialog = $("#profile-dialog");
  if (!dialog.open) dialog.showModal();
  if (userId === state.me.id) loadBlocked().catch(() => {});
  else getUser(userId, { force: true }).then(renderProfile);
}

function closeProfile() {
  profileOf = null;
  const dialog = $("#profile-dialog");
  if (dialog.open) dialog.close();
}

function renderProfile() {
  if (profileOf === null || !state.me) return;
  const view = profileOf === state.me.id ? myProfileView() : personProfileView(profileOf);
  const body = $("#profile-body");
  // A redraw (the blocked list arriving, a save) keeps what is being typed and where.
  const typed = [...body.querySelectorAll("input[id]")].map((el) => [el.id, el.value]);
  const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.id : "";
  body.replaceChildren(...view.filter(Boolean));
  for (const [id, value] of typed) {
    const el = body.querySelector(`#${id}`);
    if (el) el.value = value;
  }
  if (focused && body.querySelector(`#${focused}`)) body.querySelector(`#${focused}`).focus();
}

function profileHead(user, id, withPresence) {
  const name = user ? displayName(user) : `User ${id}`;
  const sub = user ? `@${user.username}${withPresence ? ` · ${user.online ? "online" : "offline"}` : ""}` : "";
  return h("div", { class: "profile-head" },
    fillAvatar(h("span", { class: "avatar large", "aria-hidden": "true" }), name, `u${id}`,
      withPresence && user ? Boolean(user.online) : null),
    h("div", { class: "profile-names" },
      h("h3", { id: "profile-title", text: name }),
      h("div", { class: "person-sub", text: sub })));
}

function personProfileView(id) {
  const user = state.users.get(id);
  const isBlocked = blocked.has(id);
  const cid = singleCid(state.me.id, id);
  return [
    profileHead(user, id, true),
    isBlocked ? h("p", { class: "profile-note", text: "You blocked this person: they cannot send you messages." }) : null,
    h("div", { class: "dialog-actions" },
      state.activeId === cid ? null : h("button", {
        type: "button", class: "secondary", onclick: () => { closeProfile(); openConversation(cid); },
      }, "Message"),
      h("button", { type: "button", class: isBlocked ? "secondary" : "danger", onclick: () => setBlocked(id, !isBlocked) },
        isBlocked ? "Unblock" : "Block"),
      h("button", { type: "button", class: "secondary", onclick: closeProfile }, "Close")),
  ];
}

function myProfileView() {
  const me = state.users.get(state.me.id) || state.me;
  const people = [...blocked.keys()].map((id) => state.users.get(id) || blocked.get(id));
  return [
    profileHead(me, me.id, false),
    nicknameForm(me),
    passwordForm(),
    h("div", { class: "section-title", id: "blocked-title" }, "Blocked people"),
    people.length
      ? h("ul", { class: "people-list compact blocked-list", "aria-labelledby": "blocked-title" }, people.map((u) => h("li", {
        class: "person", dataset: { userId: String(u.id) },
      },
      fillAvatar(h("span", { class: "avatar small", "aria-hidden": "true" }), displayName(u), `u${u.id}`),
      h("div", { class: "person-main" },
        h("div", { class: "person-name", text: displayName(u) }),
        h("div", { class: "person-sub", text: `@${u.username}` })),
      h("button", {
        type: "button", class: "secondary small", "aria-label": `Unblock ${displayName(u)}`,
        onclick: () => setBlocked(u.id, false),
      }, "Unblock"))))
      : h("p", { class: "empty-hint", text: "You have not blocked anyone." }),
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", class: "secondary", onclick: closeProfile }, "Close")),
  ];
}

// --- my nickname and password

const accountErrors = { nickname: "", password: "" };

function nicknameForm(me) {
  return h("form", { id: "nickname-form", class: "inline-form", onsubmit: saveNickname },
    h("label", { class: "field" }, h("span", { text: "Display name" }),
      h("input", { id: "profile-nickname", maxlength: "64", autocomplete: "nickname", value: me.nickname || "" })),
    h("button", { type: "submit", class: "secondary" }, "Save"),
    h("p", { id: "nickname-error", class: "form-error", role: "alert", text: accountErrors.nickname }));
}

function passwordForm() {
  return h("form", { id: "password-form", class: "password-form", onsubmit: changePassword },
    h("div", { class: "section-title", text: "Change password" }),
    h("label", { class: "field" }, h("span", { text: "Current password" }),
      h("input", { id: "old-password", type: "password", autocomplete: "current-password", required: true })),
    h("label", { class: "field" }, h("span", { text: "New password" }),
      h("input", { id: "new-password", type: "password", autocomplete: "new-password", required: true })),
    h("p", { id: "password-error", class: "form-error", role: "alert", text: accountErrors.password }),
    h("button", { type: "submit", class: "secondary" }, "Change password"));
}

/** The field errors of a 400 as one line each, without the field names the form already shows. */
function errorText(err) {
  if (!(err instanceof ApiError)) return "Something went wrong. Try again.";
  if (err.body && typeof err.body === "object" && typeof err.body.detail !== "string") {
    return Object.values(err.body).flat().map(String).join(" ");
  }
  return err.message;
}

async function saveNickname(ev) {
  ev.preventDefault();
  accountErrors.nickname = "";
  try {
    const user = await api("/api/users/me", { method: "PATCH", body: { nickname: $("#profile-nickname").value.trim() } });
    state.users.set(user.id, { ...(state.users.get(user.id) || {}), ...user });
    state.me = { ...state.me, nickname: user.nickname };
    if (auth.data) auth.save({ ...auth.data, user: { ...auth.data.user, nickname: user.nickname } });
    toast("Your display name is saved.");
  } catch (err) {
    accountErrors.nickname = errorText(err);
  }
  renderProfile();
  scheduleRender();
}

/** The server revokes every refresh token on a change (204, no tokens back): sign in again with the new password. */
async function changePassword(ev) {
  ev.preventDefault();
  const oldPassword = $("#old-password").value;
  const newPassword = $("#new-password").value;
  accountErrors.password = "";
  try {
    await api("/api/auth/password", { method: "POST", body: { old_password: oldPassword, new_password: newPassword } });
    const data = await api("/api/auth/login", {
      method: "POST", body: { username: state.me.username, password: newPassword }, anonymous: true,
    });
    auth.save({ access: data.access, refresh: data.refresh, user: data.user });
    scheduleRefresh();
    $("#old-password").value = "";
    $("#new-password").value = "";
    toast("Your password is changed.");
  } catch (err) {
    accountErrors.password = errorText(err);
  }
  renderProfile();
}

/** The profile button of a 1:1 conversation, and the notice with Unblock when I blocked the peer. */
export function renderBlockNotice() {
  const conv = state.convs.get(state.activeId);
  const peer = conv && conv.kind === "single" && conv.peerId !== state.me.id ? conv.peerId : null;
  const inGroup = Boolean(conv && conv.kind === "group");
  $("#conv-info").hidden = peer === null && !inGroup;
  $("#conv-info").setAttribute("aria-label", inGroup ? "Group members and settings" : "View profile");
  $("#conv-info").title = inGroup ? "Group members and settings" : "Profile";
  const notice = $("#conv-notice");
  const sig = peer !== null && blocked.has(peer) ? `${peer}|${userName(peer)}` : "";
  if (notice.dataset.sig === sig) return;
  notice.dataset.sig = sig;
  notice.hidden = !sig;
  notice.replaceChildren(...(sig ? [
    h("span", { text: `You blocked ${userName(peer)}: they cannot send you messages.` }),
    h("button", { type: "button", class: "secondary small", onclick: () => setBlocked(peer, false) }, "Unblock"),
  ] : []));
}

/** Forget who I blocked and close the panel (the session ended). */
export function resetProfile() {
  blocked.clear();
  closeProfile();
}

export function wireProfile() {

  const openSender = (ev) => {
    const sender = ev.target.closest(".msg-sender");
    const li = sender && sender.closest("li.msg");
    if (li) openProfile(Number(li.dataset.sender));
  };
  $("#message-list").addEventListener("click", openSender);
  $("#message-list").addEventListener("keydown", (ev) => {
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches(".msg-sender")) {
      ev.preventDefault();
      openSender(ev);
    }
  });
  const openPeer = () => {
    const conv = state.convs.get(state.activeId);
    if (conv && conv.kind === "single" && conv.peerId !== state.me.id) openProfile(conv.peerId);
    else if (conv && conv.kind === "group") openGroupPanel(conv.groupId);
  };
  $("#conv-info").addEventListener("click", openPeer);
  $("#conv-avatar").addEventListener("click", openPeer);
  $("#conv-title").addEventListener("click", openPeer);
  $("#settings").addEventListener("click", () => openProfile(state.me.id));
  $("#profile-dialog").addEventListener("close", () => { profileOf = null; });
  $("#profile-dialog").addEventListener("click", (ev) => { // a click on the backdrop, outside the box
    const box = ev.currentTarget.getBoundingClientRect();
    if (ev.target === ev.currentTarget && (ev.clientX < box.left || ev.clientX > box.right
      || ev.clientY < box.top || ev.clientY > box.bottom)) closeProfile();
  });
}
