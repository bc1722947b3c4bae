// Mentions (docs/protocol.md, "Mentions"): the "@" list of the conversation's participants
// in the composer, the ids a send carries, and which names in a message to highlight.
// The unread-mention badge comes with the conversation list (`unread_mentions`).

import { $, h } from "./dom.js";
import { groupMembers, knownMembers } from "./members.js";
import { displayName, getUser, state } from "./store.js";

const MAX_SUGGESTIONS = 8;
const MAX_MENTIONS = 50;  // the server refuses a send naming more
const AT_WORD = /(^|\s)@([A-Za-z0-9_.-]{0,32})$/; // an "@" word just before the caret

const picker = { items: [], index: 0, start: -1, fetching: false };

/** Lower-cased username -> "is it me?" for the users `m` mentions (names fetched on demand). */
export function mentionNames(m) {
  const names = new Map();
  for (const id of Array.isArray(m.mentions) ? m.mentions : []) {
    const user = state.users.get(id) || (id === state.me.id ? state.me : null);
    if (user && user.username) names.set(user.username.toLowerCase(), id === state.me.id);
    else getUser(id);
  }
  return names;
}

/** The ids of the participants whose "@username" is in `body`. */
export function mentionsIn(conv, body) {
  const ids = [];
  for (const user of participants(conv)) {
    const name = user.username.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (new RegExp(`(^|[^A-Za-z0-9_.-])@${name}(?![A-Za-z0-9_.-])`, "i").test(body)) ids.push(user.id);
  }
  return ids.slice(0, MAX_MENTIONS);
}

/** The people one can mention in `conv` whose user record is known: the peer, or the group's members. */
function participants(conv) {
  return participantIds(conv).map((id) => state.users.get(id)).filter(Boolean);
}

function participantIds(conv) {
  const ids = conv.kind === "single" ? [conv.peerId] : (knownMembers(conv.groupId) || []).map((m) => m.user_id);
  return ids.filter((id) => id !== state.me.id);
}

function suggestions(conv, prefix) {
  const p = prefix.toLowerCase();
  return participants(conv)
    .filter((u) => u.username.toLowerCase().startsWith(p) || (u.nickname || "").toLowerCase().startsWith(p))
    .sort((a, b) => a.username.localeCompare(b.username))
    .slice(0, MAX_SUGGESTIONS);
}

function closePicker() {
  picker.items = [];
  picker.start = -1;
  const list = $("#mention-list");
  list.hidden = true;
  list.replaceChildren();
  $("#composer-input").removeAttribute("aria-activedescendant");
}

function renderPicker() {
  const list = $("#mention-list");
  list.hidden = !picker.items.length;
  list.replaceChildren(...picker.items.map((u, i) => h("li", {
    id: `mention-opt-${i}`, role: "option", class: "mention-option", "aria-selected": String(i === picker.index),
    dataset: { username: u.username },
    onmousedown: (ev) => { ev.preventDefault(); choose(i); }, // before the textarea loses focus
  }, h("span", { class: "person-name", text: displayName(u) }), h("span", { class: "person-sub", text: `@${u.username}` }))));
  const input = $("#composer-input");
  if (picker.items.length) input.setAttribute("aria-activedescendant", `mention-opt-${picker.index}`);
}

function choose(i) {
  const user = picker.items[i];
  const input = $("#composer-input");
  if (!user || picker.start < 0) return;
  const caret = input.selectionStart;
  const before = input.value.slice(0, picker.start);
  const after = input.value.slice(caret);
  const inserted = `@${user.username} `;
  input.value = before + inserted + after;
  input.selectionStart = input.selectionEnd = before.length + inserted.length;
  closePicker();
  input.dispatchEvent(new Event("input"));
}

function onComposerInput() {
  const conv = state.convs.get(state.activeId);
  const input = $("#composer-input");
  const match = conv ? AT_WORD.exec(input.value.slice(0, input.selectionStart)) : null;
  if (!match) {
    closePicker();
    return;
  }
  if (conv.kind === "group" && !knownMembers(conv.groupId)) {
    groupMembers(conv.groupId).then(onComposerInput).catch(() => {});
  } else if (!picker.fetching) {
    // Members whose names are not here yet: fetch them, then list again (once per "@" word).
    const missing = participantIds(conv).filter((id) => !state.users.has(id));
    if (missing.length) {
      picker.fetching = true;
      Promise.all(missing.slice(0, 200).map((id) => getUser(id)))
        .then(() => { if (picker.start >= 0) onComposerInput(); })
        .finally(() => { picker.fetching = false; });
    }
  }
  picker.start = input.selectionStart - match[2].length - 1;
  picker.items = suggestions(conv, match[2]);
  picker.index = 0;
  renderPicker();
}

/** Keys while the list is open: arrows move, Enter or Tab picks, Escape closes. True if taken. */
function onComposerKeydown(ev) {
  if (!picker.items.length) return;
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    picker.index = (picker.index + (ev.key === "ArrowDown" ? 1 : -1) + picker.items.length) % picker.items.length;
    renderPicker();
  } else if ((ev.key === "Enter" || ev.key === "Tab") && !ev.shiftKey) {
    choose(picker.index);
  } else if (ev.key === "Escape") {
    closePicker();
  } else {
    return;
  }
  ev.preventDefault();
  ev.stopImmediatePropagation(); // not a send, not the end of an edit
}

export function wireMentions() {
  const input = $("#composer-input");
  input.addEventListener("keydown", onComposerKeydown); // added before the composer's own keydown
  input.addEventListener("input", onComposerInput);
  input.addEventListener("blur", () => setTimeout(closePicker, 150));
}
