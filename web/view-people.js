// Finding people: the sidebar's user search (a pick opens the 1:1 conversation) and the
// group dialog (create a group, or add people to one I own).

import { ApiError, api } from "./api.js";
import { $, debounce, fillAvatar, h, toast } from "./dom.js";
import { displayName, ensureConv, scheduleRender, singleCid, state } from "./store.js";
import { closeSearch, renderList } from "./view-list.js";
import { openConversation } from "./view-messages.js";

async function searchUsers(query) {
  const data = await api(`/api/users?search=${encodeURIComponent(query)}`);
  return (data.results || []).filter((u) => u.id !== state.me.id);
}

function personItem(user, { onpick, selected = false } = {}) {
  const name = displayName(user);
  return h("li", {
    class: "person", role: "button", tabindex: "0", dataset: { userId: String(user.id), username: user.username },
    onclick: () => onpick(user),
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onpick(user); } },
  },
  fillAvatar(h("span", { class: "avatar small", "aria-hidden": "true" }), name, `u${user.id}`),
  h("div", { class: "person-main" },
    h("div", { class: "person-name", text: name }),
    h("div", { class: "person-sub", text: `@${user.username}` })),
  selected ? h("span", { class: "tick", "aria-label": "selected", text: "✓" }) : null);
}

let searchSeq = 0;
const runSearch = debounce(async (query) => {
  const mine = ++searchSeq;
  if (!query) return;
  try {
    const users = await searchUsers(query);
    if (mine !== searchSeq || state.searchQuery !== query) return;
    for (const u of users) if (!state.users.has(u.id)) state.users.set(u.id, u);
    $("#search-results").replaceChildren(...users.map((u) => personItem(u, {
      onpick: (user) => {
        $("#user-search").value = "";
        openConversation(singleCid(state.me.id, user.id));
      },
    })));
    $("#search-empty").hidden = users.length > 0;
  } catch (err) {
    if (err instanceof ApiError) toast(err.message);
  }
}, 200);

function onSearchInput() {
  const query = $("#user-search").value.trim();
  state.searchQuery = query;
  $("#search-panel").hidden = !query;
  if (!query) {
    $("#search-results").replaceChildren();
    $("#search-empty").hidden = true;
  }
  runSearch(query);
  renderList();
}

const groupDialog = {
  mode: "create", // or "add"
  groupId: null,
  picked: new Map(), // id -> user
};

export function openGroupDialog(mode, groupId = null) {
  groupDialog.mode = mode;
  groupDialog.groupId = groupId;
  groupDialog.picked.clear();
  $("#group-dialog-title").textContent = mode === "create" ? "New group" : "Add people";
  $("#group-name-field").hidden = mode !== "create";
  $("#group-create").textContent = mode === "create" ? "Create group" : "Add";
  $("#group-name").value = "";
  $("#group-search").value = "";
  $("#group-error").textContent = "";
  $("#group-search-results").replaceChildren();
  renderChips();
  $("#group-dialog").showModal();
  (mode === "create" ? $("#group-name") : $("#group-search")).focus();
}

function renderChips() {
  $("#group-chips").replaceChildren(...[...groupDialog.picked.values()].map((u) => h("span", { class: "chip" },
    displayName(u),
    h("button", {
      type: "button", "aria-label": `Remove ${displayName(u)}`,
      onclick: () => { groupDialog.picked.delete(u.id); renderChips(); runGroupSearch($("#group-search").value.trim()); },
    }, "×"))));
}

let groupSearchSeq = 0;
const runGroupSearch = debounce(async (query) => {
  const mine = ++groupSearchSeq;
  if (!query) {
    $("#group-search-results").replaceChildren();
    return;
  }
  try {
    const users = await searchUsers(query);
    if (mine !== groupSearchSeq) return;
    $("#group-search-results").replaceChildren(...users.map((u) => personItem(u, {
      selected: groupDialog.picked.has(u.id),
      onpick: (user) => {
        if (groupDialog.picked.has(user.id)) groupDialog.picked.delete(user.id);
        else groupDialog.picked.set(user.id, user);
        renderChips();
        runGroupSearch($("#group-search").value.trim());
      },
    })));
  } catch (err) {
    if (err instanceof ApiError) $("#group-error").textContent = err.message;
  }
}, 200);

async function submitGroupDialog(ev) {
  ev.preventDefault();
  const ids = [...groupDialog.picked.keys()];
  const button = $("#group-create");
  $("#group-error").textContent = "";
  try {
    button.disabled = true;
    if (groupDialog.mode === "create") {
      const name = $("#group-name").value.trim();
      if (!name) {
        $("#group-error").textContent = "Give the group a name.";
        return;
      }
      const group = await api("/api/groups", { method: "POST", body: { name, member_ids: ids } });
      state.groups.set(group.id, group);
      const conv = ensureConv(group.conversation_id || `g_${group.id}`);
      conv.lastTs = Date.now();
      conv.loaded = false;
      $("#group-dialog").close();
      openConversation(conv.id);
    } else {
      if (!ids.length) {
        $("#group-error").textContent = "Pick at least one person.";
        return;
      }
      const result = await api(`/api/groups/${groupDialog.groupId}/members`, { method: "POST", body: { user_ids: ids } });
      const group = state.groups.get(groupDialog.groupId);
      if (group && result && typeof result.member_count === "number") group.member_count = result.member_count;
      $("#group-dialog").close();
      const added = result && Array.isArray(result.added) ? result.added.length : 0;
      toast(added ? `Added ${added} ${added === 1 ? "person" : "people"}.` : "They were already in the group.");
      scheduleRender();
    }
  } catch (err) {
    $("#group-error").textContent = err instanceof ApiError ? err.message : "Something went wrong. Try again.";
  } finally {
    button.disabled = false;
  }
}

export function wirePeople() {
  $("#user-search").addEventListener("input", onSearchInput);
  $("#user-search").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { closeSearch(); renderList(); }
    if (ev.key === "Enter") { const first = $("#search-results .person"); if (first) first.click(); }
  });
  $("#new-group").addEventListener("click", () => openGroupDialog("create"));
  $("#add-members").addEventListener("click", () => {
    const conv = state.convs.get(state.activeId);
    if (conv && conv.kind === "group") openGroupDialog("add", conv.groupId);
  });
  $("#group-form").addEventListener("submit", submitGroupDialog);
  $("#group-cancel").addEventListener("click", () => $("#group-dialog").close());
  $("#group-search").addEventListener("input", () => runGroupSearch($("#group-search").value.trim()));
  $("#group-search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") ev.preventDefault(); });
}
