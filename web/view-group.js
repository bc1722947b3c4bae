// The group panel (the header's info button in a group): the members with their roles;
// rename (owner or admin), add and remove people (owner or admin), make or unmake admins
// (owner), leave (anyone but the owner, who dissolves instead). docs/protocol.md,
// "Groups" and "Profile and groups", has the rules; the server has the last word and
// its refusal is shown in the panel.

import { ApiError, api } from "./api.js";
import { $, fillAvatar, h } from "./dom.js";
import { forgetMembers, groupMembers, knownMembers, myRole } from "./members.js";
import { displayName, refreshListSoon, scheduleRender, state } from "./store.js";
import { closeConversation } from "./view-messages.js";
import { openGroupDialog } from "./view-people.js";

const ROLE_LABEL = { owner: "Owner", admin: "Admin", member: "" };

let panelGroup = null; // the group id the panel shows
let panelError = "";

export async function openGroupPanel(groupId) {
  panelGroup = groupId;
  panelError = "";
  renderGroupPanel();
  const dialog = $("#group-panel");
  if (!dialog.open) dialog.showModal();
  try {
    await groupMembers(groupId, { force: true });
  } catch (err) {
    panelError = err instanceof ApiError ? err.message : "Could not load the members.";
  }
  renderGroupPanel();
}

function closeGroupPanel() {
  panelGroup = null;
  if ($("#group-panel").open) $("#group-panel").close();
}

/** Run one change, then show the server's answer: the fresh member list, or its refusal. */
async function change(run) {
  panelError = "";
  try {
    await run();
  } catch (err) {
    panelError = err instanceof ApiError ? err.message : "Something went wrong. Try again.";
  }
  if (panelGroup !== null) {
    await Promise.all([groupMembers(panelGroup, { force: true }), reloadGroup(panelGroup)]).catch(() => {});
  }
  renderGroupPanel();
  scheduleRender();
}

async function reloadGroup(groupId) {
  state.groups.set(groupId, await api(`/api/groups/${encodeURIComponent(groupId)}`));
}

const membersPath = (groupId, userId) => `/api/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}`;

function rename(groupId, ev) {
  ev.preventDefault();
  const name = $("#group-rename-input").value.trim();
  if (!name) {
    panelError = "Give the group a name.";
    renderGroupPanel();
    return;
  }
  change(async () => {
    state.groups.set(groupId, await api(`/api/groups/${encodeURIComponent(groupId)}`, { method: "PATCH", body: { name } }));
  });
}

const setRole = (groupId, userId, role) => change(() => api(membersPath(groupId, userId), { method: "PATCH", body: { role } }));
const removeMember = (groupId, userId) => change(() => api(membersPath(groupId, userId), { method: "DELETE" }));

async function leave(groupId) {
  try {
    await api(membersPath(groupId, state.me.id), { method: "DELETE" });
  } catch (err) {
    panelError = err instanceof ApiError ? err.message : "Something went wrong. Try again.";
    renderGroupPanel();
    return;
  }
  closeGroupPanel();
  const cid = `g_${groupId}`;
  if (state.activeId === cid) closeConversation();
  state.convs.delete(cid);
  state.groups.delete(groupId);
  forgetMembers(groupId);
  refreshListSoon();
  scheduleRender();
}

function memberActions(groupId, member, mine) {
  const name = displayName(state.users.get(member.user_id)) || `User ${member.user_id}`;
  const actions = [];
  if (member.user_id === state.me.id || member.role === "owner") return actions;
  if (mine === "owner") {
    const admin = member.role === "admin";
    actions.push(h("button", {
      type: "button", class: "secondary small", "aria-label": `${admin ? "Remove admin" : "Make admin"}: ${name}`,
      onclick: () => setRole(groupId, member.user_id, admin ? "member" : "admin"),
    }, admin ? "Remove admin" : "Make admin"));
  }
  if (mine === "owner" || (mine === "admin" && member.role === "member")) {
    actions.push(h("button", {
      type: "button", class: "danger small", "aria-label": `Remove ${name}`,
      onclick: () => removeMember(groupId, member.user_id),
    }, "Remove"));
  }
  return actions;
}

function memberItem(groupId, member, mine) {
  const user = state.users.get(member.user_id);
  const name = member.user_id === state.me.id ? `${displayName(state.me)} (you)` : (displayName(user) || `User ${member.user_id}`);
  return h("li", { class: "person member", dataset: { userId: String(member.user_id), role: member.role } },
    fillAvatar(h("span", { class: "avatar small", "aria-hidden": "true" }), name, `u${member.user_id}`),
    h("div", { class: "person-main" },
      h("div", { class: "person-name", text: name }),
      h("div", { class: "person-sub", text: user ? `@${user.username}` : "" })),
    ROLE_LABEL[member.role] ? h("span", { class: "role", text: ROLE_LABEL[member.role] }) : null,
    memberActions(groupId, member, mine));
}

export function renderGroupPanel() {
  if (panelGroup === null || !state.me) return;
  const groupId = panelGroup;
  const group = state.groups.get(groupId);
  const members = knownMembers(groupId) || [];
  const mine = myRole(groupId);
  const manager = mine === "owner" || mine === "admin";
  const body = [
    h("h3", { id: "group-panel-title", text: group ? group.name : `Group ${groupId}` }),
    manager ? h("form", { id: "group-rename", class: "inline-form", onsubmit: (ev) => rename(groupId, ev) },
      h("label", { class: "field" }, h("span", { text: "Group name" }),
        h("input", { id: "group-rename-input", maxlength: "64", value: group ? group.name : "" })),
      h("button", { type: "submit", class: "secondary" }, "Rename")) : null,
    h("p", { id: "group-panel-error", class: "form-error", role: "alert", text: panelError }),
    h("div", { class: "section-title", id: "group-members-title", text: `Members (${group ? group.member_count : members.length})` }),
    h("ul", { id: "group-members", class: "people-list compact", "aria-labelledby": "group-members-title" },
      members.map((m) => memberItem(groupId, m, mine))),
    h("div", { class: "dialog-actions" },
      manager ? h("button", {
        type: "button", class: "secondary", onclick: () => { closeGroupPanel(); openGroupDialog("add", groupId); },
      }, "Add people") : null,
      mine && mine !== "owner" ? h("button", { type: "button", id: "group-leave", class: "danger", onclick: () => leave(groupId) },
        "Leave group") : null,
      h("button", { type: "button", class: "secondary", onclick: closeGroupPanel }, "Close")),
  ];
  // Redrawn only when something shown changed: a redraw would take the keyboard focus away.
  const sig = JSON.stringify([groupId, group, members, mine, panelError,
    members.map((m) => displayName(state.users.get(m.user_id)))]);
  const holder = $("#group-panel-body");
  if (holder.dataset.sig === sig) return;
  holder.dataset.sig = sig;
  // Keep what is being typed in the name field across a redraw.
  const typed = $("#group-rename-input");
  const keep = typed && document.activeElement === typed ? typed.value : null;
  holder.replaceChildren(...body.filter(Boolean));
  if (keep !== null) {
    $("#group-rename-input").value = keep;
    $("#group-rename-input").focus();
  }
}

export function wireGroupPanel() {
  $("#group-panel").addEventListener("close", () => { panelGroup = null; });
}
