// The sidebar: my name, the conversation list (pinned first, then the latest; unread
// badges, mute and pin marks, "typing…"), each conversation's options menu (pin, mute),
// and the reset of the search box when a conversation opens.

import { ApiError, api } from "./api.js";
import { $, fillAvatar, h, icon, shortTime, toast } from "./dom.js";
import { openMenu, pointerRect } from "./menu.js";
import {
  convTitle, displayName, refreshListSoon, scheduleRender, sortedConvs, state, unreadOf, userName,
} from "./store.js";
import { typingPreview } from "./typing.js";

export function renderMe() {
  const me = state.users.get(state.me.id) || state.me;
  const name = displayName(me);
  if ($("#me-name").textContent !== name) {
    $("#me-name").textContent = name;
    fillAvatar($("#me-avatar"), name, `u${me.id}`);
  }
}

function previewOf(conv) {
  const m = conv.lastMessage;
  const pending = conv.pending[conv.pending.length - 1];
  if (pending) return `You: ${pending.body}`;
  if (!m) return conv.kind === "group" ? "No messages yet" : "Say hello";
  let text = m.recalled ? "Message recalled" : (m.kind === "text" ? m.body : `[${m.kind}] ${m.body}`);
  text = text.replace(/\s+/g, " ");
  if (m.sender_id === state.me.id) return `You: ${text}`;
  if (conv.kind === "group") return `${userName(m.sender_id)}: ${text}`;
  return text;
}

/** Avatar colour seed: a person keeps one colour everywhere. */
export function avatarSeed(conv) {
  return conv.kind === "single" ? `u${conv.peerId}` : conv.id;
}

export function renderList() {
  const list = $("#conversation-list");
  const convs = sortedConvs();
  const items = convs.map((conv) => {
    const unread = unreadOf(conv);
    const mentioned = unread ? Math.min(conv.unreadMentions, unread) : 0;
    const title = convTitle(conv);
    const peer = conv.kind === "single" && conv.peerId !== state.me.id ? state.users.get(conv.peerId) : null;
    const avatar = fillAvatar(h("span", { class: "avatar", "aria-hidden": "true" }), title, avatarSeed(conv),
      peer ? Boolean(peer.online) : null);
    const classes = ["conv-item"];
    if (conv.id === state.activeId) classes.push("active");
    if (unread) classes.push("unread");
    if (conv.pinned) classes.push("pinned");
    if (conv.muted) classes.push("muted");
    const typing = typingPreview(conv);
    return h("li", {
      class: classes.join(" "), role: "button", tabindex: "0", dataset: { cid: conv.id },
      "aria-current": conv.id === state.activeId ? "true" : null,
      "aria-label": [title, conv.pinned && "pinned", conv.muted && "muted", unread && `${unread} unread`,
        mentioned && `${mentioned} mentioning you`]
        .filter(Boolean).join(", "),
    },
    avatar,
    h("div", { class: "conv-main" },
      h("div", { class: "conv-top" },
        h("span", { class: "conv-name", text: title }),
        convFlags(conv),
        h("time", { class: "conv-time", text: shortTime(conv.lastMessage ? conv.lastMessage.ts : 0) })),
      h("div", { class: "conv-bottom" },
        h("span", { class: typing ? "conv-preview is-typing" : "conv-preview", text: typing || previewOf(conv) }),
        mentioned ? h("span", {
          class: "badge mention-badge", title: "Mentions of you", dataset: { mentions: String(mentioned) }, text: "@",
        }) : null,
        unread ? h("span", { class: conv.muted ? "badge muted" : "badge", dataset: { unread: String(unread) }, text: unread > 99 ? "99+" : String(unread) }) : null)),
    convOptionsButton(conv, title));
  });
  list.replaceChildren(...items);
  $("#list-empty").hidden = convs.length > 0 || Boolean(state.searchQuery);
}

export function closeSearch() {
  $("#user-search").value = "";
  state.searchQuery = "";
  $("#search-panel").hidden = true;
  $("#search-results").replaceChildren();
  $("#message-results").replaceChildren();
  $("#message-section").hidden = true;
}

// --- mute and pin

/** Mute or pin at once here; the server's list (GET /api/conversations) settles the order. */
async function setConvPrefs(conv, prefs) {
  const before = { muted: conv.muted, pinned: conv.pinned, pinOrder: conv.pinOrder };
  Object.assign(conv, prefs);
  if (prefs.pinned) conv.pinOrder = Date.now(); // above every pin the last list gave (those rank by position)
  scheduleRender();
  try {
    await api(`/api/conversations/${encodeURIComponent(conv.id)}`, { method: "PATCH", body: prefs });
    refreshListSoon();
  } catch (err) {
    Object.assign(conv, before);
    scheduleRender();
    toast(err instanceof ApiError ? err.message : "Something went wrong. Try again.");
  }
}

function openConvMenu(cid, anchor, at = null) {
  const conv = state.convs.get(cid);
  if (!conv) return;
  openMenu(anchor, `Options for ${convTitle(conv)}`, [
    { label: conv.pinned ? "Unpin" : "Pin to top", run: () => setConvPrefs(conv, { pinned: !conv.pinned }) },
    { label: conv.muted ? "Unmute" : "Mute", run: () => setConvPrefs(conv, { muted: !conv.muted }) },
  ], at);
}

/** The pin and mute marks and the options button of a conversation in the list. */
function convFlags(conv) {
  return [
    conv.muted ? h("span", { class: "conv-flag muted", title: "Muted" }, icon("muted", 14)) : null,
    conv.pinned ? h("span", { class: "conv-flag pinned", title: "Pinned" }, icon("pin", 14)) : null,
  ];
}

function convOptionsButton(conv, title) {
  return h("button", {
    type: "button", class: "conv-options", "aria-label": `Options for ${title}`, "aria-haspopup": "menu",
    onclick: (ev) => {
      ev.stopPropagation(); // not a click on the conversation
      openConvMenu(conv.id, ev.currentTarget);
    },
  }, icon("more", 18));
}

export function wireList() {
  $("#conversation-list").addEventListener("contextmenu", (ev) => {
    const item = ev.target.closest(".conv-item");
    if (!item) return;
    ev.preventDefault();
    openConvMenu(item.dataset.cid, item.querySelector(".conv-options") || item, pointerRect(ev));
  });
}
