// The message pane: opening a conversation, its history (the last page forward, older
// pages as the reader scrolls up), the messages kept in the DOM and redrawn only when
// they change, each message's menu (recall, delete for me), and the typing line.

import { ApiError, api } from "./api.js";
import { attachmentView, clearStaged } from "./attachments.js";
import { $, dayLabel, fillAvatar, h, icon, safeUrl, timeFmt, toast } from "./dom.js";
import { openMenu } from "./menu.js";
import {
  addMessage, applyRecall, convTitle, dropMessage, ensureConv, findMessage, getUser, lowestSeq, markRead,
  renderNow, requestSync, scheduleRender, state, transmit, userName,
} from "./store.js";
import { canEdit, replyQuote, replySig, startEdit, startReply } from "./compose-context.js";
import { mentionNames } from "./mentions.js";
import { openReactionPicker, reactionRow, reactionSig } from "./reactions.js";
import { richText } from "./text.js";
import { typingLabel } from "./typing.js";
import { avatarSeed, closeSearch } from "./view-list.js";

const PAGE_SIZE = 30;             // history page (before_seq)
const RECALL_WINDOW_MS = 120_000; // the server's default GOCHAT_RECALL_WINDOW_S (not sent to clients)

const FLASH_MS = 3_000;           // how long a message jumped to stays highlighted

const msgDom = new Map(); // key -> {el, sig}
const flashed = { key: "", until: 0 }; // the message last jumped to (a redraw keeps its mark)

function loadInitial(conv) {
  if (conv.loaded) return Promise.resolve();
  if (conv.loading) return conv.loading;
  conv.loading = (async () => {
    const base = `/api/conversations/${encodeURIComponent(conv.id)}/messages`;
    let after = Math.max(0, conv.maxSeq - PAGE_SIZE);
    const start = after;
    // Pushes kept before the first open may sit below this window with gaps between:
    // drop them so paging backwards starts from one contiguous block.
    for (const [seq, m] of conv.messages) {
      if (seq <= start) {
        conv.messages.delete(seq);
        conv.ids.delete(m.message_id);
      }
    }
    // Forward from a page before the end: this also reads messages acked but not yet stored.
    for (let i = 0; i < 20; i++) {
      const page = await api(`${base}?after_seq=${after}&limit=200`);
      for (const m of page.messages) addMessage(m, "history-forward");
      if (!page.has_more || !page.messages.length) break;
      after = page.messages[page.messages.length - 1].seq;
    }
    conv.loaded = true;
    const low = lowestSeq(conv);
    conv.hasMoreBefore = start > 0 && low > 1;
  })().catch((err) => {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) toast(err.message);
  }).finally(() => {
    conv.loading = null;
    scheduleRender({ stick: true });
  });
  scheduleRender();
  return conv.loading;
}

async function loadOlder(conv, limit = PAGE_SIZE) {
  if (!conv.loaded || conv.loadingOlder || !conv.hasMoreBefore) return;
  const low = lowestSeq(conv);
  if (low <= 1) {
    conv.hasMoreBefore = false;
    scheduleRender();
    return;
  }
  conv.loadingOlder = true;
  renderHistoryStatus(conv);
  try {
    const page = await api(`/api/conversations/${encodeURIComponent(conv.id)}/messages?before_seq=${low}&limit=${limit}`);
    const el = $("#messages");
    const fromBottom = el.scrollHeight - el.scrollTop;
    for (const m of page.messages) addMessage(m, "history");
    conv.hasMoreBefore = Boolean(page.has_more) && page.messages.length > 0;
    if (conv.id === state.activeId) {
      renderConversation();
      el.scrollTop = el.scrollHeight - fromBottom; // keep the reader's place
    }
  } catch (err) {
    if (err instanceof ApiError) toast(err.message);
  } finally {
    conv.loadingOlder = false;
    scheduleRender();
  }
  maybeLoadOlder();
}

function maybeLoadOlder() {
  const conv = state.convs.get(state.activeId);
  const el = $("#messages");
  if (conv && conv.loaded && conv.hasMoreBefore && el.scrollTop < 150) loadOlder(conv);
}

export async function openConversation(cid) {
  const conv = ensureConv(cid);
  if (state.activeId !== cid) {
    state.activeId = cid;
    clearMessagePane();
    clearStaged(); // a file picked in one conversation is not sent into the next
  }
  $("#chat-view").classList.add("show-conversation");
  closeSearch();
  renderNow({ stick: true });
  if (conv.kind === "single" && conv.peerId !== state.me.id) getUser(conv.peerId, { force: true });
  if (window.matchMedia("(min-width: 761px)").matches) $("#composer-input").focus();
  await loadInitial(conv);
  if (state.activeId === cid) {
    markRead(conv);
    requestSync(conv);
    maybeLoadOlder();
  }
}

/** Open `cid` scrolled to its message `seq`, loading earlier pages until it is there, and mark it. */
export async function openConversationAt(cid, seq) {
  await openConversation(cid);
  await showMessage(cid, seq);
}

/** Scroll the open conversation to its message `seq` (history paged back as far as needed) and flash it. */
export async function showMessage(cid, seq) {
  const conv = state.convs.get(cid);
  for (let i = 0; i < 100 && conv && state.activeId === cid && !conv.messages.has(seq); i++) {
    if (conv.loadingOlder || conv.loading) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (!conv.hasMoreBefore || lowestSeq(conv) <= seq) break;
    // One request for what lies between, up to the server's page limit of 200.
    await loadOlder(conv, Math.min(200, Math.max(PAGE_SIZE, lowestSeq(conv) - seq + 5)));
  }
  const m = conv && conv.messages.get(seq);
  if (!m || state.activeId !== cid) {
    if (state.activeId === cid) toast("That message is no longer here.");
    return;
  }
  // After the renders already queued (which stick to the bottom), not before them.
  await new Promise((resolve) => setTimeout(resolve, 0));
  renderNow();
  flashed.key = `m:${m.message_id}`;
  flashed.until = Date.now() + FLASH_MS;
  const el = $(`#message-list li.msg[data-message-id="${m.message_id}"]`);
  if (!el) return;
  el.classList.add("flash");
  el.scrollIntoView({ block: "center" });
  setTimeout(() => el.classList.remove("flash"), FLASH_MS);
}

export function closeConversation() {
  state.activeId = null;
  clearMessagePane();
  $("#chat-view").classList.remove("show-conversation");
  renderNow();
}

/** Forget every message drawn (another conversation opens, or the session ends). */
export function clearMessagePane() {
  msgDom.clear();
  $("#message-list").replaceChildren();
}

function messageItems(conv) {
  const items = [];
  const seqs = [...conv.messages.keys()].sort((a, b) => a - b);
  let prev = null;
  const all = seqs.map((s) => ({ type: "msg", m: conv.messages.get(s) }))
    .concat(conv.pending.map((p) => ({ type: "pending", p })));
  all.forEach((entry, i) => {
    const ts = entry.type === "msg" ? entry.m.ts : Date.now();
    const sender = entry.type === "msg" ? entry.m.sender_id : state.me.id;
    const day = new Date(ts).toDateString();
    if (!prev || prev.day !== day) items.push({ key: `d:${day}`, type: "day", ts });
    const next = all[i + 1];
    const nextSender = next ? (next.type === "msg" ? next.m.sender_id : state.me.id) : null;
    const nextDay = next ? new Date(next.type === "msg" ? next.m.ts : Date.now()).toDateString() : null;
    items.push({
      ...entry,
      key: entry.type === "msg" ? `m:${entry.m.message_id}` : `p:${entry.p.cmid}`,
      firstOfRun: !prev || prev.sender !== sender || prev.day !== day,
      lastOfRun: !next || nextSender !== sender || nextDay !== day,
    });
    prev = { sender, day };
  });
  return items;
}

function statusOf(conv, m) {
  if (m.sender_id !== state.me.id) return null;
  if (conv.kind === "single" && conv.peerId !== state.me.id && m.seq <= conv.peerReadSeq) return "Read";
  return "Sent";
}

function renderMessageItem(conv, item) {
  if (item.type === "day") {
    const label = dayLabel(item.ts);
    return [label, () => h("li", { class: "day-sep", role: "separator", text: label })];
  }
  if (item.type === "pending") {
    const p = item.p;
    const sig = JSON.stringify(["p", p.status, p.detail, item.firstOfRun, item.lastOfRun]);
    return [sig, () => h("li", {
      class: `msg mine ${p.status}${item.firstOfRun ? "" : " cont"}${item.lastOfRun ? " last-of-run" : ""}`,
      dataset: { cmid: p.cmid },
    },
    h("div", { class: "bubble" }, attachmentView(p), p.body || !p.extra ? h("span", { class: "msg-body", text: p.body }) : null),
    h("div", { class: "msg-meta" },
      h("span", { class: "msg-status", text: p.status === "failed" ? (p.detail || "Not delivered") : "Sending…" }),
      p.status === "failed"
        ? h("button", { type: "button", class: "retry", onclick: () => { transmit(conv, p); scheduleRender(); } }, "Retry")
        : null))];
  }
  const m = item.m;
  const mine = m.sender_id === state.me.id;
  const status = statusOf(conv, m);
  const showSender = conv.kind === "group" && !mine && item.firstOfRun;
  const sender = showSender ? userName(m.sender_id) : "";
  const sig = JSON.stringify(["m", m.recalled, m.body, status, sender, item.firstOfRun, item.lastOfRun,
    m.edited_at || 0, replySig(conv, m), reactionSig(m), [...mentionNames(m).keys()].join()]);
  return [sig, () => {
    const classes = ["msg"];
    if (mine) classes.push("mine");
    if (m.recalled) classes.push("recalled");
    if (!item.firstOfRun) classes.push("cont");
    if (item.lastOfRun) classes.push("last-of-run");
    const bubble = h("div", { class: "bubble" }, replyQuote(conv, m));
    const attachment = m.recalled ? null : attachmentView(m);
    if (m.recalled) {
      bubble.append(h("span", { class: "msg-body", text: mine ? "You recalled a message" : "This message was recalled" }));
    } else if (attachment) {
      classes.push("has-attachment");
      bubble.append(attachment);
      if (m.body) bubble.append(h("span", { class: "msg-body caption", text: m.body }));
    } else {
      if (m.kind !== "text") bubble.append(h("span", { class: "msg-kind", text: `[${m.kind}]` }));
      bubble.append(m.kind === "text"
        ? h("span", { class: "msg-body" }, richText(m.body, mentionNames(m)))
        : h("span", { class: "msg-body", text: m.body }));
      const url = m.kind === "text" ? null : safeUrl(m.body);
      if (url) bubble.append(" ", h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: "open" }));
    }
    return h("li", {
      class: classes.join(" "),
      dataset: { seq: String(m.seq), messageId: m.message_id, sender: String(m.sender_id) },
    },
    showSender ? h("div", { class: "msg-sender", text: sender }) : null,
    bubble,
    h("div", { class: "msg-meta" },
      h("time", { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString(), text: timeFmt.format(new Date(m.ts)) }),
      m.edited_at && !m.recalled
        ? h("span", { class: "msg-edited", title: new Date(m.edited_at).toLocaleString(), text: "edited" }) : null,
      status ? h("span", { class: `msg-status ${status === "Read" ? "read" : "sent"}`, text: status }) : null),
    reactionRow(m));
  }];
}

function renderHistoryStatus(conv) {
  const el = $("#history-status");
  if (conv.loading) el.textContent = "Loading messages…";
  else if (conv.loadingOlder) el.textContent = "Loading earlier messages…";
  else if (conv.loaded && !conv.hasMoreBefore && conv.messages.size) el.textContent = "This is the beginning of the conversation.";
  else if (conv.loaded && !conv.messages.size && !conv.pending.length) el.textContent = "No messages yet. Say hello!";
  else el.textContent = "";
}

export function renderConversation({ stick = false } = {}) {
  const conv = state.convs.get(state.activeId);
  $("#pane-empty").hidden = Boolean(conv);
  $("#conversation").hidden = !conv;
  if (!conv) return;

  const title = convTitle(conv);
  $("#conv-title").textContent = title;
  const sub = $("#conv-subtitle");
  let online = null;
  if (conv.kind === "group") {
    const group = state.groups.get(conv.groupId);
    sub.textContent = group ? `${group.member_count} member${group.member_count === 1 ? "" : "s"}` : "Group";
    sub.classList.remove("online");
  } else if (conv.peerId === state.me.id) {
    sub.textContent = "Only you can see these";
    sub.classList.remove("online");
  } else {
    const peer = state.users.get(conv.peerId);
    online = peer ? Boolean(peer.online) : null;
    sub.textContent = peer ? `@${peer.username} · ${online ? "online" : "offline"}` : "";
    sub.classList.toggle("online", Boolean(online));
  }
  const avatar = $("#conv-avatar");
  if (avatar.dataset.sig !== `${title}|${conv.id}|${online}`) {
    fillAvatar(avatar, title, avatarSeed(conv), online);
    avatar.dataset.sig = `${title}|${conv.id}|${online}`;
  }
  const group = conv.kind === "group" ? state.groups.get(conv.groupId) : null;
  $("#add-members").hidden = !(group && group.owner_id === state.me.id);
  renderHistoryStatus(conv);

  const scroller = $("#messages");
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const list = $("#message-list");
  const seen = new Set();
  let index = 0;
  for (const item of messageItems(conv)) {
    const [sig, build] = renderMessageItem(conv, item);
    seen.add(item.key);
    let entry = msgDom.get(item.key);
    if (!entry || entry.sig !== sig) {
      const el = build();
      decorateMessage(conv, item, el);
      el.dataset.key = item.key;
      if (entry) entry.el.replaceWith(el);
      entry = { el, sig };
      msgDom.set(item.key, entry);
    }
    const at = list.children[index];
    if (at !== entry.el) list.insertBefore(entry.el, at || null);
    index += 1;
  }
  for (const [key, entry] of msgDom) {
    if (!seen.has(key)) {
      entry.el.remove();
      msgDom.delete(key);
    }
  }
  if (stick || nearBottom) scroller.scrollTop = scroller.scrollHeight;
}

/** "*name* is typing" above the composer of the open conversation. */
export function renderTypingLine() {
  const conv = state.convs.get(state.activeId);
  const label = typingLabel(conv);
  $("#typing").hidden = !label;
  if ($("#typing-text").textContent !== label) $("#typing-text").textContent = label;
}

// --- recall and delete for me

/** Offered inside the window the server allows by default; the server decides (403 with its reason). */
function canRecall(m) {
  return m.sender_id === state.me.id && !m.recalled && Date.now() - m.ts < RECALL_WINDOW_MS;
}

function openMessageMenu(conv, messageId, anchor) {
  const m = findMessage(conv, messageId);
  if (!m) return;
  const items = [];
  if (!m.recalled) {
    items.push({ label: "Reply", run: () => startReply(conv, m) });
    items.push({ label: "React", run: () => openReactionPicker(m, anchor) });
  }
  if (canEdit(m)) items.push({ label: "Edit", run: () => startEdit(conv, m) });
  if (canRecall(m)) items.push({ label: "Recall", run: () => recallMessage(conv, m.message_id) });
  items.push({ label: "Delete for me", danger: true, run: () => deleteForMe(conv, m.message_id) });
  openMenu(anchor, "Message actions", items);
}

async function recallMessage(conv, messageId) {
  try {
    await api(`/api/messages/${encodeURIComponent(messageId)}/recall`, { method: "POST" });
    const m = findMessage(conv, messageId); // the `recall` frame does the same for every other device
    if (m) applyRecall(conv, messageId, m.seq);
    scheduleRender();
  } catch (err) {
    toast(err instanceof ApiError ? err.message : "Could not recall the message. Try again.");
  }
}

async function deleteForMe(conv, messageId) {
  try {
    await api(`/api/messages/${encodeURIComponent(messageId)}`, { method: "DELETE" });
    dropMessage(conv, messageId); // my other devices get a `hidden` frame
    scheduleRender();
  } catch (err) {
    toast(err instanceof ApiError ? err.message : "Could not delete the message. Try again.");
  }
}

/** A message built for the list gets its actions button (and a clickable sender name in groups). */
function decorateMessage(conv, item, el) {
  if (item.type !== "msg") return;
  const id = item.m.message_id;
  if (flashed.key === item.key && Date.now() < flashed.until) el.classList.add("flash");
  el.append(h("button", {
    type: "button", class: "msg-more", "aria-label": "Message actions", "aria-haspopup": "menu",
    onclick: (ev) => openMessageMenu(conv, id, ev.currentTarget),
  }, icon("more", 18)));
  const sender = el.querySelector(".msg-sender");
  if (sender) {
    sender.setAttribute("role", "button");
    sender.setAttribute("tabindex", "0");
  }
}

export function wireMessages() {
  const openFromList = (ev) => {
    const item = ev.target.closest(".conv-item");
    if (item) openConversation(item.dataset.cid);
  };
  $("#conversation-list").addEventListener("click", openFromList);
  $("#conversation-list").addEventListener("keydown", (ev) => {
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches(".conv-item")) { ev.preventDefault(); openFromList(ev); }
  });
  $("#back").addEventListener("click", closeConversation);
  $("#messages").addEventListener("scroll", maybeLoadOlder, { passive: true });
}
