// The client's state (docs/protocol.md, "Sync"): conversations, their messages by seq,
// own sends awaiting their ack, the seq bookkeeping that finds gaps and repairs them with
// `sync`, users and groups fetched on demand, and the render queue every change goes through.

import { api } from "./api.js";
import { debounce, randomId } from "./dom.js";
import { isSocketReady, sendFrame } from "./socket.js";

const ACK_TIMEOUT_MS = 10_000;    // a send without ack this long is marked failed

// ---------------------------------------------------------------- render queue

// What draws the whole page from the state, set by app.js (views sit above the state).
let renderer = () => {};
let renderQueued = false;
let stickQueued = false;

export function setRenderer(render) {
  renderer = render;
}

/** Draw now; `stick` keeps the message pane scrolled to the bottom. */
export function renderNow({ stick = false } = {}) {
  renderer({ stick });
}

/** Draw once after the current task, however many changes it makes. */
export function scheduleRender({ stick = false } = {}) {
  stickQueued = stickQueued || stick;
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    const stickNow = stickQueued;
    stickQueued = false;
    renderer({ stick: stickNow });
  });
}

// ---------------------------------------------------------------- state

export const state = {
  me: null,
  convs: new Map(),   // conversation_id -> conv
  activeId: null,
  users: new Map(),   // id -> {id, username, nickname, online}
  userFetches: new Map(),
  groups: new Map(),  // id -> {id, name, member_count, ...}
  groupFetches: new Map(),
  searchQuery: "",
};

function makeConv(cid) {
  const conv = {
    id: cid,
    kind: cid.startsWith("g_") ? "group" : "single",
    peerId: null,
    groupId: null,
    maxSeq: 0,         // highest seq known to exist
    readSeq: 0,        // my read position
    sentReadSeq: 0,    // highest read we reported
    peerReadSeq: 0,    // 1:1: the peer's read position (from read frames)
    syncedSeq: 0,      // everything up to here is accounted for; sync from here
    lastMessage: null,
    lastTs: 0,
    muted: false,      // mine only: no badge colour, not in the tab title's count
    pinned: false,
    pinOrder: 0,       // among pinned conversations, higher is nearer the top
    messages: new Map(), // seq -> message
    ids: new Set(),      // message_id strings, for de-duplication
    pending: [],         // own sends not yet acked: {cmid, body, kind, extra, status, detail, timer}
    loaded: false,
    loading: null,
    loadingOlder: false,
    hasMoreBefore: false,
    syncing: false,
    syncAgain: false,
    unreadMentions: 0,   // unread messages that mention me (the list's `unread_mentions`, then pushes)
  };
  if (conv.kind === "single") {
    const [a, b] = cid.slice(2).split("_").map(Number);
    conv.peerId = a === state.me.id ? b : a;
  } else {
    conv.groupId = Number(cid.slice(2));
  }
  return conv;
}

export function validCid(cid) {
  return typeof cid === "string" && /^(s_\d+_\d+|g_\d+)$/.test(cid);
}

export function ensureConv(cid) {
  let conv = state.convs.get(cid);
  if (!conv) {
    conv = makeConv(cid);
    state.convs.set(cid, conv);
    if (conv.kind === "single") getUser(conv.peerId);
    else getGroup(conv.groupId);
  }
  return conv;
}

export function singleCid(a, b) {
  return `s_${Math.min(a, b)}_${Math.max(a, b)}`;
}

export function unreadOf(conv) {
  return Math.max(0, conv.maxSeq - conv.readSeq);
}

export function displayName(user) {
  return user ? (user.nickname || user.username) : "";
}

export function userName(id) {
  if (id === state.me.id) return "You";
  const user = state.users.get(id);
  if (!user) getUser(id);
  return user ? displayName(user) : `User ${id}`;
}

export function convTitle(conv) {
  if (conv.kind === "group") {
    const group = state.groups.get(conv.groupId);
    return group ? group.name : `Group ${conv.groupId}`;
  }
  if (conv.peerId === state.me.id) return "Notes to self";
  return userName(conv.peerId);
}

export function getUser(id, { force = false } = {}) {
  if (!force && state.users.has(id)) return Promise.resolve(state.users.get(id));
  return fetchOnce(state.users, state.userFetches, id, `/api/users/${encodeURIComponent(id)}`);
}

function getGroup(id) {
  if (state.groups.has(id)) return Promise.resolve(state.groups.get(id));
  return fetchOnce(state.groups, state.groupFetches, id, `/api/groups/${encodeURIComponent(id)}`);
}

/** GET `path` into `cache` under `id`, one request however many ask meanwhile; null on failure. */
function fetchOnce(cache, inflight, id, path) {
  if (inflight.has(id)) return inflight.get(id);
  const p = api(path)
    .then((value) => {
      cache.set(id, value);
      scheduleRender();
      return value;
    })
    .catch(() => null)
    .finally(() => inflight.delete(id));
  inflight.set(id, p);
  return p;
}

/** Add one message from history, sync, a push or an ack. Returns true if it was new. */
export function addMessage(m, source) {
  if (!m || !validCid(m.conversation_id) || typeof m.seq !== "number") return false;
  const known = state.convs.has(m.conversation_id);
  const conv = ensureConv(m.conversation_id);
  if (!known && source === "push") {
    conv.syncedSeq = m.seq - 1;
    conv.readSeq = m.seq - 1;
    refreshListSoon();
  }
  const mine = m.sender_id === state.me.id;
  if (mine && m.client_msg_id) resolvePending(conv, m.client_msg_id);
  const id = String(m.message_id);
  if (conv.ids.has(id)) {
    const existing = conv.messages.get(m.seq);
    if (existing && m.recalled && !existing.recalled) applyRecall(conv, id, m.seq);
    if (existing && !existing.recalled) refreshRich(existing, m);
    return false;
  }
  const msg = { ...m, message_id: id };
  conv.ids.add(id);
  conv.messages.set(msg.seq, msg);
  if (msg.seq > conv.maxSeq) conv.maxSeq = msg.seq;
  if (!conv.lastMessage || msg.seq >= conv.lastMessage.seq) {
    conv.lastMessage = msg;
    conv.lastTs = msg.ts || conv.lastTs;
  }
  if (mine && msg.seq > conv.readSeq) conv.readSeq = msg.seq; // your own messages are never unread
  if ((source === "push" || source === "ack") && msg.seq > conv.syncedSeq + 1) {
    requestSync(conv); // a gap: fetch what was missed
  } else {
    while (conv.messages.has(conv.syncedSeq + 1)) conv.syncedSeq += 1;
    if (source === "sync" || source === "history-forward") conv.syncedSeq = Math.max(conv.syncedSeq, msg.seq);
  }
  return true;
}

/** A message seen again (sync, history): its edit and reactions as the server has them now. */
function refreshRich(existing, m) {
  if (m.edited_at && m.edited_at !== existing.edited_at) {
    existing.body = m.body;
    existing.edited_at = m.edited_at;
  }
  if (Array.isArray(m.reactions)) existing.reactions = m.reactions;
}

export function applyRecall(conv, messageId, seq) {
  const msg = conv.messages.get(seq);
  if (msg && msg.message_id === String(messageId)) {
    msg.recalled = true;
    msg.body = "";
    msg.extra = {};
  }
  if (conv.lastMessage && conv.lastMessage.message_id === String(messageId)) {
    conv.lastMessage = { ...conv.lastMessage, recalled: true, body: "" };
  }
}

export function resolvePending(conv, cmid) {
  const i = conv.pending.findIndex((p) => p.cmid === cmid);
  if (i < 0) return null;
  const [p] = conv.pending.splice(i, 1);
  clearTimeout(p.timer);
  return p;
}

export function findPending(cmid) {
  for (const conv of state.convs.values()) {
    const p = conv.pending.find((x) => x.cmid === cmid);
    if (p) return [conv, p];
  }
  return [null, null];
}

export function findMessage(conv, messageId) {
  const id = String(messageId);
  for (const m of conv.messages.values()) if (m.message_id === id) return m;
  return null;
}

/** Remove a message deleted for me from this device's view. */
export function dropMessage(conv, messageId) {
  const id = String(messageId);
  conv.ids.add(id); // a late push or sync of it is then dropped as a duplicate
  const m = findMessage(conv, id);
  if (m) conv.messages.delete(m.seq);
  if (conv.lastMessage && conv.lastMessage.message_id === id) {
    const newest = Math.max(0, ...conv.messages.keys());
    conv.lastMessage = conv.messages.get(newest) || null;
    refreshListSoon(); // the server knows the newest message left for me
  }
}

export function lowestSeq(conv) {
  let low = Infinity;
  for (const seq of conv.messages.keys()) if (seq < low) low = seq;
  return low === Infinity ? 0 : low;
}

export function sortedConvs() {
  return [...state.convs.values()].sort((a, b) => (b.pinned - a.pinned) || (b.pinOrder - a.pinOrder)
    || (b.lastTs - a.lastTs) || (b.maxSeq - a.maxSeq)
    || a.id.localeCompare(b.id));
}

// ---------------------------------------------------------------- talking to the server

export function sendFrameOf(conv, p) {
  const frame = { type: "send", client_msg_id: p.cmid, conversation_id: conv.id, body: p.body, kind: p.kind };
  if (p.extra) frame.extra = p.extra;
  if (p.replyTo) frame.reply_to = p.replyTo.message_id;
  if (p.mentions && p.mentions.length) frame.mentions = p.mentions;
  return frame;
}

export function requestSync(conv) {
  if (!isSocketReady()) return;
  if (conv.syncing) {
    conv.syncAgain = true;
    return;
  }
  conv.syncing = true;
  conv.syncAgain = false;
  sendFrame({ type: "sync", conversation_id: conv.id, after_seq: Math.max(0, conv.syncedSeq), limit: 200 });
}

export function markRead(conv) {
  if (document.visibilityState !== "visible") return;
  if (conv.maxSeq <= conv.sentReadSeq && conv.maxSeq <= conv.readSeq) return;
  const seq = conv.maxSeq;
  conv.readSeq = Math.max(conv.readSeq, seq);
  conv.sentReadSeq = Math.max(conv.sentReadSeq, seq);
  conv.unreadMentions = 0; // read up to the newest: none is unread
  if (!sendFrame({ type: "read", conversation_id: conv.id, seq })) {
    api(`/api/conversations/${encodeURIComponent(conv.id)}/read`, { method: "POST", body: { seq } }).catch(() => {});
  }
  scheduleRender();
}

/** Send a message; `replyTo` ({message_id, seq, sender_id}) and `mentions` (user ids) are optional. */
export function sendText(conv, body, kind = "text", extra = undefined, { replyTo = null, mentions = [] } = {}) {
  const p = { cmid: randomId(), body, kind, extra, replyTo, mentions, status: "pending", detail: "", timer: null };
  conv.pending.push(p);
  conv.lastTs = Date.now();
  transmit(conv, p);
  scheduleRender({ stick: true });
}

export function transmit(conv, p) {
  p.status = "pending";
  p.detail = "";
  clearTimeout(p.timer);
  p.timer = setTimeout(() => {
    if (p.status === "pending") {
      p.status = "failed";
      p.detail = "Not delivered";
      scheduleRender();
    }
  }, ACK_TIMEOUT_MS);
  sendFrame(sendFrameOf(conv, p)); // if offline, frames.js sends it once a socket is ready
}

export async function loadConversations() {
  const list = await api("/api/conversations");
  if (!Array.isArray(list)) return;
  for (const [index, item] of list.entries()) {
    if (!validCid(item.conversation_id)) continue;
    const fresh = !state.convs.has(item.conversation_id);
    const conv = ensureConv(item.conversation_id);
    conv.muted = Boolean(item.muted);
    conv.pinned = Boolean(item.pinned);
    conv.pinOrder = conv.pinned ? list.length - index : 0; // the server lists the latest pin first
    // Until a conversation is opened its history comes from REST; sync only what is newer.
    if (fresh || !conv.loaded) conv.syncedSeq = Math.max(conv.syncedSeq, item.max_seq || 0);
    conv.maxSeq = Math.max(conv.maxSeq, item.max_seq || 0);
    conv.readSeq = Math.max(conv.readSeq, item.read_seq || 0);
    if (typeof item.unread_mentions === "number") conv.unreadMentions = item.unread_mentions;
    const last = item.last_message;
    if (last && (!conv.lastMessage || last.seq >= conv.lastMessage.seq)) {
      const known = conv.messages.get(last.seq);
      conv.lastMessage = known && !last.recalled ? known : { ...last, message_id: String(last.message_id) };
      if (known && last.recalled && !known.recalled) applyRecall(conv, last.message_id, last.seq);
      conv.lastTs = last.ts || conv.lastTs;
    }
    if (isSocketReady() && conv.syncedSeq < conv.maxSeq && conv.loaded) requestSync(conv);
  }
  scheduleRender();
}

export const refreshListSoon = debounce(() => { loadConversations().catch(() => {}); }, 400);

export async function loadGroups() {
  const groups = await api("/api/groups");
  for (const g of groups || []) state.groups.set(g.id, g);
  scheduleRender();
}

export async function refreshPresence() {
  if (document.visibilityState !== "visible") return;
  const peers = new Set();
  const active = state.convs.get(state.activeId);
  if (active && active.kind === "single") peers.add(active.peerId);
  for (const conv of sortedConvs().slice(0, 20)) if (conv.kind === "single") peers.add(conv.peerId);
  peers.delete(state.me.id);
  await Promise.all([...peers].map((id) => getUser(id, { force: true })));
}
