// GoChat web client: plain ES module, no framework, no build step.
// The contract it follows is docs/protocol.md (REST under /api, WebSocket at /ws).
// Every piece of user data reaches the page through textContent or text nodes, never as HTML.

import { attachmentView, clearStaged, hasStagedAttachment, initAttachments, sendStaged } from "./attachments.js";

const STORAGE_KEY = "gochat.auth.v1";
const PAGE_SIZE = 30;             // history page (before_seq)
const ACK_TIMEOUT_MS = 10_000;    // a send without ack this long is marked failed
const REFRESH_MARGIN_MS = 60_000; // refresh the access token this long before it expires
const PING_MS = 25_000;           // keep-alive; the server also refreshes presence on ping
const FRAME_RATE = 10;            // frames other than `send` a second, at most: half the server's
const FRAME_BURST = 50;           // GOCHAT_WS_FRAME_RATE/BURST defaults (20/s, bursts of 100)
const PONG_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const PRESENCE_POLL_MS = 30_000;
const LIST_POLL_MS = 60_000;
const TYPING_SEND_MS = 3_200;     // at most one `typing` frame this often (the server relays one per 3 s)
const TYPING_SHOW_MS = 5_000;     // "… is typing" stays this long after the last `typing` frame
const RECALL_WINDOW_MS = 120_000; // the server's default GOCHAT_RECALL_WINDOW_S (not sent to clients)

// ---------------------------------------------------------------- small helpers

const $ = (sel) => document.querySelector(sel);

/** Build an element. String children become text nodes (never parsed as HTML). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function randomId(prefix = "c-") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function tokenClaims(token) {
  try {
    let part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    part += "=".repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

function tokenExpiry(token) {
  return (tokenClaims(token).exp || 0) * 1000;
}

/** How long before expiry to refresh: a minute, or a tenth of the lifetime if that is less. */
function refreshMargin(token) {
  const { exp, iat } = tokenClaims(token);
  const lifetime = exp && iat ? (exp - iat) * 1000 : 15 * 60_000;
  return Math.min(REFRESH_MARGIN_MS, lifetime / 10);
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "short", day: "numeric" });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (sameDay(d, today)) return "Today";
  if (sameDay(d, yesterday)) return "Yesterday";
  return dayFmt.format(d);
}

function shortTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return sameDay(d, new Date()) ? timeFmt.format(d) : shortDayFmt.format(d);
}

const AVATAR_COLORS = ["#5b5bf0", "#0ea5e9", "#14b8a6", "#22c55e", "#eab308", "#f97316", "#ef4444", "#ec4899",
  "#a855f7", "#64748b"];

function fillAvatar(el, name, seed, online) {
  const letters = (name || "?").trim().split(/\s+/).slice(0, 2).map((w) => Array.from(w)[0] || "").join("");
  el.replaceChildren(letters.toUpperCase() || "?");
  let hash = 0;
  for (const ch of String(seed)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  el.style.background = AVATAR_COLORS[hash % AVATAR_COLORS.length];
  if (online !== undefined && online !== null) {
    el.append(h("span", { class: online ? "presence online" : "presence", title: online ? "Online" : "Offline" }));
  }
  return el;
}

function toast(text, ms = 4000) {
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, ms);
}

// ---------------------------------------------------------------- tokens (shared by every tab)

class AuthLost extends Error {}

const auth = {
  data: null, // {access, refresh, user: {id, username, nickname}}
  read() {
    try {
      const data = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      return data && data.access && data.refresh && data.user ? data : null;
    } catch {
      return null;
    }
  },
  save(data) {
    this.data = data;
    localStorage.setItem(STORAGE_KEY, JSON.stringify(data));
  },
  clear() {
    this.data = null;
    localStorage.removeItem(STORAGE_KEY);
  },
};

function withLock(name, fn) {
  // Web Locks keep two tabs from rotating the same refresh token at once.
  if (navigator.locks && navigator.locks.request) return navigator.locks.request(name, fn);
  return fn();
}

let refreshing = null;
let refreshTimer = null;

/** A fresh access token. `rejected` is a token the server just refused (401/4401). */
function refreshTokens(rejected) {
  if (refreshing) return refreshing;
  refreshing = withLock("gochat-token-refresh", async () => {
    const stored = auth.read();
    if (!stored || (auth.data && stored.user.id !== auth.data.user.id)) throw new AuthLost();
    const left = tokenExpiry(stored.access) - Date.now();
    // Another tab may have rotated already: take its token if it is good.
    if (stored.access !== rejected && left > refreshMargin(stored.access)) {
      auth.data = stored;
      return stored.access;
    }
    const r = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh: stored.refresh }),
    });
    if (r.status === 400 || r.status === 401 || r.status === 403) {
      const again = auth.read();
      if (again && again.refresh !== stored.refresh) { // rotated by a tab without Web Locks
        auth.data = again;
        return again.access;
      }
      throw new AuthLost();
    }
    if (!r.ok) throw new Error(`token refresh failed (${r.status})`);
    const body = await r.json();
    const next = { ...stored, access: body.access, refresh: body.refresh || stored.refresh };
    auth.save(next);
    return next.access;
  }).then((token) => {
    scheduleRefresh();
    renewSocketAuth();
    return token;
  }, (err) => {
    if (err instanceof AuthLost) sessionLost("Your session has ended. Please sign in again.");
    else scheduleRefresh(15_000);
    throw err;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  if (!auth.data) return;
  // Jittered so that several tabs do not all ask at the same instant.
  const margin = refreshMargin(auth.data.access);
  const due = tokenExpiry(auth.data.access) - Date.now() - margin - Math.random() * (margin / 4);
  refreshTimer = setTimeout(() => { refreshTokens().catch(() => {}); }, Math.max(1_000, delay ?? due));
}

async function accessToken() {
  if (!auth.data) throw new AuthLost();
  if (tokenExpiry(auth.data.access) - Date.now() < refreshMargin(auth.data.access) / 2) return refreshTokens();
  return auth.data.access;
}

// ---------------------------------------------------------------- REST

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(body) || `Request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

function describeError(body) {
  if (!body || typeof body !== "object") return typeof body === "string" && body.length < 200 ? body : "";
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body)
    .map(([field, msgs]) => {
      const text = Array.isArray(msgs) ? msgs.join(" ") : String(msgs);
      return field === "non_field_errors" ? text : `${field}: ${text}`;
    })
    .join("\n");
}

async function api(path, { method = "GET", body, anonymous = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let token = null;
    if (!anonymous) {
      token = await accessToken();
      headers.Authorization = `Bearer ${token}`;
    }
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && !anonymous && attempt === 0) {
      await refreshTokens(token);
      continue;
    }
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
}

// ---------------------------------------------------------------- state

const state = {
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
  };
  if (conv.kind === "single") {
    const [a, b] = cid.slice(2).split("_").map(Number);
    conv.peerId = a === state.me.id ? b : a;
  } else {
    conv.groupId = Number(cid.slice(2));
  }
  return conv;
}

function validCid(cid) {
  return typeof cid === "string" && /^(s_\d+_\d+|g_\d+)$/.test(cid);
}

function ensureConv(cid) {
  let conv = state.convs.get(cid);
  if (!conv) {
    conv = makeConv(cid);
    state.convs.set(cid, conv);
    if (conv.kind === "single") getUser(conv.peerId);
    else getGroup(conv.groupId);
  }
  return conv;
}

function singleCid(a, b) {
  return `s_${Math.min(a, b)}_${Math.max(a, b)}`;
}

function unreadOf(conv) {
  return Math.max(0, conv.maxSeq - conv.readSeq);
}

function displayName(user) {
  return user ? (user.nickname || user.username) : "";
}

function userName(id) {
  if (id === state.me.id) return "You";
  const user = state.users.get(id);
  if (!user) getUser(id);
  return user ? displayName(user) : `User ${id}`;
}

function convTitle(conv) {
  if (conv.kind === "group") {
    const group = state.groups.get(conv.groupId);
    return group ? group.name : `Group ${conv.groupId}`;
  }
  if (conv.peerId === state.me.id) return "Notes to self";
  return userName(conv.peerId);
}

function getUser(id, { force = false } = {}) {
  if (!force && state.users.has(id)) return Promise.resolve(state.users.get(id));
  if (state.userFetches.has(id)) return state.userFetches.get(id);
  const p = api(`/api/users/${encodeURIComponent(id)}`)
    .then((user) => {
      state.users.set(id, user);
      scheduleRender();
      return user;
    })
    .catch(() => null)
    .finally(() => state.userFetches.delete(id));
  state.userFetches.set(id, p);
  return p;
}

function getGroup(id) {
  if (state.groups.has(id)) return Promise.resolve(state.groups.get(id));
  if (state.groupFetches.has(id)) return state.groupFetches.get(id);
  const p = api(`/api/groups/${encodeURIComponent(id)}`)
    .then((group) => {
      state.groups.set(id, group);
      scheduleRender();
      return group;
    })
    .catch(() => null)
    .finally(() => state.groupFetches.delete(id));
  state.groupFetches.set(id, p);
  return p;
}

/** Add one message from history, sync, a push or an ack. Returns true if it was new. */
function addMessage(m, source) {
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

function applyRecall(conv, messageId, seq) {
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

function resolvePending(conv, cmid) {
  const i = conv.pending.findIndex((p) => p.cmid === cmid);
  if (i < 0) return null;
  const [p] = conv.pending.splice(i, 1);
  clearTimeout(p.timer);
  return p;
}

function findPending(cmid) {
  for (const conv of state.convs.values()) {
    const p = conv.pending.find((x) => x.cmid === cmid);
    if (p) return [conv, p];
  }
  return [null, null];
}

// ---------------------------------------------------------------- WebSocket

const socket = {
  ws: null,
  ready: false,      // the first pong arrived: authenticated and registered
  stopped: true,
  attempt: 0,
  authRetries: 0,
  timer: null,
  pingTimer: null,
  pongTimer: null,
  expiresAt: 0,      // ms: the server closes the socket (4401) then, unless an `auth` moves it
  offered: null,     // the access token of the last `auth` frame sent on this socket
};

// Frames other than `send` leave through a token bucket kept under the server's limit, so
// that a reconnect syncing many conversations is paced rather than answered `rate_limited`.
const outbox = { tokens: FRAME_BURST, at: 0, queue: [], timer: null, retry: null };

function setConnState(stateName, text) {
  const el = $("#conn-status");
  el.dataset.state = stateName;
  el.textContent = text;
}

async function connect() {
  clearTimeout(socket.timer);
  if (socket.stopped || socket.ws || !auth.data) return;
  setConnState("connecting", socket.attempt ? "Reconnecting…" : "Connecting…");
  let token;
  try {
    token = await accessToken();
  } catch (err) {
    if (!(err instanceof AuthLost)) scheduleReconnect();
    return;
  }
  if (socket.stopped || socket.ws) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  socket.ws = ws;
  socket.ready = false;
  socket.expiresAt = tokenExpiry(token);
  socket.offered = null;
  outbox.tokens = FRAME_BURST - 1; // the first ping
  outbox.at = Date.now();
  ws.onopen = () => {
    // The server accepts first and checks the token after; a pong proves we are in.
    ws.send(JSON.stringify({ type: "ping" }));
    armPongTimeout(ws);
  };
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "pong") {
      clearTimeout(socket.pongTimer);
      if (!socket.ready) onSocketReady(ws);
      return;
    }
    handleFrame(frame);
  };
  ws.onclose = (ev) => {
    if (socket.ws !== ws) return;
    socket.ws = null;
    socket.ready = false;
    clearInterval(socket.pingTimer);
    clearTimeout(socket.pongTimer);
    clearOutbox();
    for (const conv of state.convs.values()) conv.syncing = false; // answers died with the socket
    if (socket.stopped) return;
    onSocketClosed(ev.code, token);
  };
  ws.onerror = () => {}; // a close event follows
}

function armPongTimeout(ws) {
  clearTimeout(socket.pongTimer);
  socket.pongTimer = setTimeout(() => {
    if (socket.ws === ws) ws.close(4000, "no pong"); // dead connection: onclose reconnects
  }, PONG_TIMEOUT_MS);
}

function onSocketReady(ws) {
  socket.ready = true;
  socket.attempt = 0;
  socket.authRetries = 0;
  setConnState("open", "Online");
  clearInterval(socket.pingTimer);
  socket.pingTimer = setInterval(() => {
    if (socket.ws === ws && sendFrame({ type: "ping" })) armPongTimeout(ws);
  }, PING_MS);
  renewSocketAuth(); // the tokens may have been renewed while this socket was opening
  // Sends typed while offline go out now (same client_msg_id: the server de-duplicates).
  for (const conv of state.convs.values()) {
    for (const p of conv.pending) if (p.status === "pending") sendFrame(sendFrameOf(conv, p));
  }
  // Catch up: every known conversation from the last seq we saw, and the list for new ones.
  for (const conv of state.convs.values()) requestSync(conv);
  loadConversations().catch(() => {});
  const active = state.convs.get(state.activeId);
  if (active) markRead(active);
}

function onSocketClosed(code, token) {
  setConnState("offline", "Offline");
  if (code === 4403) {
    sessionLost("This account has been disabled.");
    return;
  }
  if (code === 4401 && socket.authRetries < 2) {
    socket.authRetries += 1;
    refreshTokens(token).then(() => scheduleReconnect(200), (err) => {
      if (!(err instanceof AuthLost)) scheduleReconnect();
    });
    return;
  }
  scheduleReconnect();
}

function scheduleReconnect(fixedDelay) {
  clearTimeout(socket.timer);
  if (socket.stopped) return;
  // Exponential backoff with jitter: half fixed, half random, so clients of a restarted gateway spread out.
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** socket.attempt);
  const delay = fixedDelay ?? ceiling / 2 + Math.random() * (ceiling / 2);
  socket.attempt += 1;
  const seconds = Math.max(1, Math.round(delay / 1000));
  setConnState("offline", delay < 1500 ? "Reconnecting…" : `Offline · retrying in ${seconds}s`);
  socket.timer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (socket.stopped || socket.ws) return;
  socket.attempt = 0;
  connect();
}

function disconnect() {
  socket.stopped = true;
  clearTimeout(socket.timer);
  clearInterval(socket.pingTimer);
  clearTimeout(socket.pongTimer);
  clearOutbox();
  const ws = socket.ws;
  socket.ws = null;
  socket.ready = false;
  if (ws) ws.close(1000, "bye");
}

/**
 * Send a frame on the open socket; false when there is none. `send` frames go at once (the
 * server limits them separately, and each is acked or failed). `ping` and `auth` go at once
 * too, still counted; `typing` is dropped when the bucket is empty; the rest wait their turn.
 */
function sendFrame(frame) {
  if (!socket.ready || !socket.ws || socket.ws.readyState !== WebSocket.OPEN) return false;
  if (frame.type === "send") {
    socket.ws.send(JSON.stringify(frame));
    return true;
  }
  refillOutbox();
  const urgent = frame.type === "ping" || frame.type === "auth";
  if (urgent || (!outbox.queue.length && outbox.tokens >= 1)) {
    outbox.tokens -= 1;
    socket.ws.send(JSON.stringify(frame));
    return true;
  }
  if (frame.type === "typing") return false;
  outbox.queue.push(frame);
  drainOutboxSoon();
  return true;
}

function refillOutbox() {
  const now = Date.now();
  outbox.tokens = Math.min(FRAME_BURST, outbox.tokens + ((now - outbox.at) / 1000) * FRAME_RATE);
  outbox.at = now;
}

function drainOutboxSoon() {
  if (outbox.timer || !outbox.queue.length) return;
  const wait = Math.max(0, ((1 - outbox.tokens) / FRAME_RATE) * 1000);
  outbox.timer = setTimeout(() => {
    outbox.timer = null;
    refillOutbox();
    while (outbox.queue.length && outbox.tokens >= 1 && socket.ws && socket.ws.readyState === WebSocket.OPEN) {
      outbox.tokens -= 1;
      socket.ws.send(JSON.stringify(outbox.queue.shift()));
    }
    drainOutboxSoon();
  }, wait);
}

function clearOutbox() {
  clearTimeout(outbox.timer);
  clearTimeout(outbox.retry); // a new socket syncs everything anyway
  outbox.timer = null;
  outbox.retry = null;
  outbox.queue = [];
}

/**
 * Move the open socket onto the current access token with an `auth` frame, so that it
 * outlives the token it was opened with without a reconnect (docs/protocol.md, sessions).
 * If the server refuses, the socket closes at its old expiry and onSocketClosed reconnects.
 */
function renewSocketAuth() {
  const token = auth.data && auth.data.access;
  if (!token || !socket.ready || token === socket.offered) return;
  if (tokenExpiry(token) <= socket.expiresAt) return; // nothing to gain: already authorised that long
  socket.offered = token;
  sendFrame({ type: "auth", token });
}

function sendFrameOf(conv, p) {
  const frame = { type: "send", client_msg_id: p.cmid, conversation_id: conv.id, body: p.body, kind: p.kind };
  if (p.extra) frame.extra = p.extra;
  return frame;
}

function requestSync(conv) {
  if (!socket.ready) return;
  if (conv.syncing) {
    conv.syncAgain = true;
    return;
  }
  conv.syncing = true;
  conv.syncAgain = false;
  sendFrame({ type: "sync", conversation_id: conv.id, after_seq: Math.max(0, conv.syncedSeq), limit: 200 });
}

function handleFrame(f) {
  switch (f.type) {
    case "auth_ok":
      if (typeof f.expires_at === "number") socket.expiresAt = Math.max(socket.expiresAt, f.expires_at);
      break;
    case "message": {
      const m = f.message;
      if (m) stopTyping(m.conversation_id, m.sender_id);
      if (addMessage(m, "push")) {
        const conv = state.convs.get(m.conversation_id);
        if (conv && conv.id === state.activeId) markRead(conv);
        scheduleRender();
      }
      break;
    }
    case "ack": {
      if (!validCid(f.conversation_id)) break;
      const conv = ensureConv(f.conversation_id);
      const p = resolvePending(conv, f.client_msg_id);
      if (p) {
        addMessage({
          message_id: f.message_id, conversation_id: f.conversation_id, seq: f.seq, sender_id: state.me.id,
          kind: p.kind, body: p.body, extra: p.extra || {}, client_msg_id: f.client_msg_id, ts: f.ts, recalled: false,
        }, "ack");
      } else if (!conv.ids.has(String(f.message_id))) {
        requestSync(conv);
      }
      if (conv.id === state.activeId) markRead(conv);
      scheduleRender();
      break;
    }
    case "sync_result": {
      const conv = state.convs.get(f.conversation_id);
      if (!conv) break;
      const messages = Array.isArray(f.messages) ? f.messages : [];
      for (const m of messages) addMessage(m, "sync");
      conv.syncing = false;
      if ((f.has_more && messages.length) || conv.syncAgain) requestSync(conv);
      if (conv.id === state.activeId) markRead(conv);
      scheduleRender();
      break;
    }
    case "read": {
      const conv = state.convs.get(f.conversation_id);
      if (!conv || typeof f.seq !== "number") break;
      if (f.user_id === state.me.id) {
        conv.readSeq = Math.max(conv.readSeq, f.seq);
        conv.sentReadSeq = Math.max(conv.sentReadSeq, f.seq);
      } else if (conv.kind === "single") {
        conv.peerReadSeq = Math.max(conv.peerReadSeq, f.seq);
      }
      scheduleRender();
      break;
    }
    case "recall": {
      const conv = state.convs.get(f.conversation_id);
      if (!conv) break;
      applyRecall(conv, f.message_id, f.seq);
      scheduleRender();
      break;
    }
    case "typing":
      onTypingFrame(f);
      break;
    case "hidden": {
      const conv = state.convs.get(f.conversation_id);
      if (!conv || !f.message_id) break;
      dropMessage(conv, f.message_id);
      scheduleRender();
      break;
    }
    case "error": {
      if ((f.code === "rate_limited" || f.code === "unavailable") && socket.offered
          && tokenExpiry(socket.offered) > socket.expiresAt) {
        // The renewal may be the frame refused: offer it again shortly (the same token twice is harmless).
        socket.offered = null;
        setTimeout(renewSocketAuth, 2_000);
      }
      if (f.client_msg_id) {
        const [conv, p] = findPending(f.client_msg_id);
        if (p) {
          clearTimeout(p.timer);
          p.status = "failed";
          p.detail = f.code === "rate_limited" ? "Too fast — try again" : (f.detail || f.code || "Not sent");
          scheduleRender();
          if (conv && f.code === "not_member") toast("You can no longer send messages here.");
        }
      } else if (f.code === "not_member") {
        // A sync for a conversation we left: stop asking.
        for (const conv of state.convs.values()) conv.syncing = false;
      } else if (f.code === "rate_limited" && !outbox.retry) {
        // Some frame was dropped (the pacing above should prevent it): ask again for what is open.
        outbox.retry = setTimeout(() => {
          outbox.retry = null;
          for (const conv of state.convs.values()) {
            if (conv.syncing) { conv.syncing = false; requestSync(conv); }
          }
        }, 2_000);
      }
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------- actions

function markRead(conv) {
  if (document.visibilityState !== "visible") return;
  if (conv.maxSeq <= conv.sentReadSeq && conv.maxSeq <= conv.readSeq) return;
  const seq = conv.maxSeq;
  conv.readSeq = Math.max(conv.readSeq, seq);
  conv.sentReadSeq = Math.max(conv.sentReadSeq, seq);
  if (!sendFrame({ type: "read", conversation_id: conv.id, seq })) {
    api(`/api/conversations/${encodeURIComponent(conv.id)}/read`, { method: "POST", body: { seq } }).catch(() => {});
  }
  scheduleRender();
}

function sendText(conv, body, kind = "text", extra = undefined) {
  const p = { cmid: randomId(), body, kind, extra, status: "pending", detail: "", timer: null };
  conv.pending.push(p);
  conv.lastTs = Date.now();
  transmit(conv, p);
  scheduleRender({ stick: true });
}

function transmit(conv, p) {
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
  sendFrame(sendFrameOf(conv, p)); // if offline, onSocketReady sends it
}

async function loadConversations() {
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
    const last = item.last_message;
    if (last && (!conv.lastMessage || last.seq >= conv.lastMessage.seq)) {
      const known = conv.messages.get(last.seq);
      conv.lastMessage = known && !last.recalled ? known : { ...last, message_id: String(last.message_id) };
      if (known && last.recalled && !known.recalled) applyRecall(conv, last.message_id, last.seq);
      conv.lastTs = last.ts || conv.lastTs;
    }
    if (socket.ready && conv.syncedSeq < conv.maxSeq && conv.loaded) requestSync(conv);
  }
  scheduleRender();
}

const refreshListSoon = debounce(() => { loadConversations().catch(() => {}); }, 400);

async function loadGroups() {
  const groups = await api("/api/groups");
  for (const g of groups || []) state.groups.set(g.id, g);
  scheduleRender();
}

async function refreshPresence() {
  if (document.visibilityState !== "visible") return;
  const peers = new Set();
  const active = state.convs.get(state.activeId);
  if (active && active.kind === "single") peers.add(active.peerId);
  for (const conv of sortedConvs().slice(0, 20)) if (conv.kind === "single") peers.add(conv.peerId);
  peers.delete(state.me.id);
  await Promise.all([...peers].map((id) => getUser(id, { force: true })));
}

function lowestSeq(conv) {
  let low = Infinity;
  for (const seq of conv.messages.keys()) if (seq < low) low = seq;
  return low === Infinity ? 0 : low;
}

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

async function loadOlder(conv) {
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
    const page = await api(`/api/conversations/${encodeURIComponent(conv.id)}/messages?before_seq=${low}&limit=${PAGE_SIZE}`);
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

async function openConversation(cid) {
  const conv = ensureConv(cid);
  if (state.activeId !== cid) {
    state.activeId = cid;
    msgDom.clear();
    $("#message-list").replaceChildren();
  }
  $("#chat-view").classList.add("show-conversation");
  closeSearch();
  renderAll({ stick: true });
  if (conv.kind === "single" && conv.peerId !== state.me.id) getUser(conv.peerId, { force: true });
  if (window.matchMedia("(min-width: 761px)").matches) $("#composer-input").focus();
  await loadInitial(conv);
  if (state.activeId === cid) {
    markRead(conv);
    requestSync(conv);
    maybeLoadOlder();
  }
}

function closeConversation() {
  state.activeId = null;
  msgDom.clear();
  $("#message-list").replaceChildren();
  $("#chat-view").classList.remove("show-conversation");
  renderAll();
}

// ---------------------------------------------------------------- rendering

let renderQueued = false;
let stickQueued = false;

function scheduleRender({ stick = false } = {}) {
  stickQueued = stickQueued || stick;
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    const stickNow = stickQueued;
    stickQueued = false;
    renderAll({ stick: stickNow });
  });
}

function renderAll({ stick = false } = {}) {
  if (!state.me) return;
  renderMe();
  renderList();
  renderConversation({ stick });
  renderConversationExtras();
  const total = [...state.convs.values()].reduce((n, c) => n + (c.muted ? 0 : unreadOf(c)), 0);
  document.title = total ? `(${total}) GoChat` : "GoChat";
}

function renderMe() {
  const me = state.users.get(state.me.id) || state.me;
  const name = displayName(me);
  if ($("#me-name").textContent !== name) {
    $("#me-name").textContent = name;
    fillAvatar($("#me-avatar"), name, `u${me.id}`);
  }
}

function sortedConvs() {
  return [...state.convs.values()].sort((a, b) => (b.pinned - a.pinned) || (b.pinOrder - a.pinOrder)
    || (b.lastTs - a.lastTs) || (b.maxSeq - a.maxSeq)
    || a.id.localeCompare(b.id));
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
function avatarSeed(conv) {
  return conv.kind === "single" ? `u${conv.peerId}` : conv.id;
}

function renderList() {
  const list = $("#conversation-list");
  const convs = sortedConvs();
  const items = convs.map((conv) => {
    const unread = unreadOf(conv);
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
      "aria-label": [title, conv.pinned && "pinned", conv.muted && "muted", unread && `${unread} unread`]
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
        unread ? h("span", { class: conv.muted ? "badge muted" : "badge", dataset: { unread: String(unread) }, text: unread > 99 ? "99+" : String(unread) }) : null)),
    convOptionsButton(conv, title));
  });
  list.replaceChildren(...items);
  $("#list-empty").hidden = convs.length > 0 || Boolean(state.searchQuery);
}

const msgDom = new Map(); // key -> {el, sig}

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
  const sig = JSON.stringify(["m", m.recalled, m.body, status, sender, item.firstOfRun, item.lastOfRun]);
  return [sig, () => {
    const classes = ["msg"];
    if (mine) classes.push("mine");
    if (m.recalled) classes.push("recalled");
    if (!item.firstOfRun) classes.push("cont");
    if (item.lastOfRun) classes.push("last-of-run");
    const bubble = h("div", { class: "bubble" });
    const attachment = m.recalled ? null : attachmentView(m);
    if (m.recalled) {
      bubble.append(h("span", { class: "msg-body", text: mine ? "You recalled a message" : "This message was recalled" }));
    } else if (attachment) {
      classes.push("has-attachment");
      bubble.append(attachment);
      if (m.body) bubble.append(h("span", { class: "msg-body caption", text: m.body }));
    } else {
      if (m.kind !== "text") bubble.append(h("span", { class: "msg-kind", text: `[${m.kind}]` }));
      bubble.append(h("span", { class: "msg-body", text: m.body }));
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
      status ? h("span", { class: `msg-status ${status === "Read" ? "read" : "sent"}`, text: status }) : null));
  }];
}

function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function renderHistoryStatus(conv) {
  const el = $("#history-status");
  if (conv.loading) el.textContent = "Loading messages…";
  else if (conv.loadingOlder) el.textContent = "Loading earlier messages…";
  else if (conv.loaded && !conv.hasMoreBefore && conv.messages.size) el.textContent = "This is the beginning of the conversation.";
  else if (conv.loaded && !conv.messages.size && !conv.pending.length) el.textContent = "No messages yet. Say hello!";
  else el.textContent = "";
}

function renderConversation({ stick = false } = {}) {
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

// ---------------------------------------------------------------- search, groups

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

function closeSearch() {
  $("#user-search").value = "";
  state.searchQuery = "";
  $("#search-panel").hidden = true;
  $("#search-results").replaceChildren();
}

const groupDialog = {
  mode: "create", // or "add"
  groupId: null,
  picked: new Map(), // id -> user
};

function openGroupDialog(mode, groupId = null) {
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

// ---------------------------------------------------------------- typing, recall, delete for me, block, mute and pin

const typingNow = new Map();    // conversation_id -> Map(user_id -> timer): who is typing there right now
const typingSentAt = new Map(); // conversation_id -> when this tab last sent `typing` there
const blocked = new Map();      // user id -> user: the people I blocked
const menuState = { anchor: null };
let profileOf = null;           // the user id the profile dialog shows (my own: my blocked list)

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  more: "M5 10a2 2 0 1 1 0 4 2 2 0 0 1 0-4Zm7 0a2 2 0 1 1 0 4 2 2 0 0 1 0-4Zm7 0a2 2 0 1 1 0 4 2 2 0 0 1 0-4Z",
  pin: "M16 9V4h1V2H7v2h1v5c0 1.66-1.34 3-3 3v2h5.97v7l1 1 1-1v-7H19v-2c-1.66 0-3-1.34-3-3Z",
  muted: "M20 18.69 7.84 6.14 5.27 3.49 4 4.76l2.8 2.8v.01c-.52.99-.8 2.16-.8 3.42v5l-2 2v1h13.73l2 2L21 19.72 20 "
    + "18.69ZM12 22c1.11 0 2-.89 2-2h-4c0 1.11.89 2 2 2Zm6-7.32V11c0-3.08-1.64-5.64-4.5-6.32V4c0-.83-.67-1.5-1.5-1.5s"
    + "-1.5.67-1.5 1.5v.68c-.15.03-.29.08-.42.12-.1.03-.2.07-.3.11-.23.09-.46.2-.68.31L18 14.68Z",
};

/** A fixed icon (our own path data, never user data). */
function icon(name, size = 16) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

// --- a small popup menu, shared by messages and the conversation list

/** Open a menu of `items` ({label, run, danger?}) by `anchor`, or at a pointer position `at`. */
function openMenu(anchor, label, items, at = null) {
  if (menuState.anchor === anchor) {
    closeMenu(true); // the same button again: toggle
    return;
  }
  closeMenu();
  const el = $("#menu");
  el.setAttribute("aria-label", label);
  el.replaceChildren(...items.map((item) => h("button", {
    type: "button", role: "menuitem", class: item.danger ? "menu-item danger-text" : "menu-item",
    onclick: () => { closeMenu(true); item.run(); },
  }, item.label)));
  el.hidden = false;
  const rect = at || anchor.getBoundingClientRect();
  const left = Math.max(8, Math.min(rect.left, window.innerWidth - el.offsetWidth - 8));
  const fitsBelow = rect.bottom + 4 + el.offsetHeight <= window.innerHeight - 8;
  el.style.left = `${left}px`;
  el.style.top = `${fitsBelow ? rect.bottom + 4 : Math.max(8, rect.top - el.offsetHeight - 4)}px`;
  menuState.anchor = anchor;
  anchor.setAttribute("aria-expanded", "true");
  el.querySelector("button").focus();
}

function closeMenu(restoreFocus = false) {
  const el = $("#menu");
  const anchor = menuState.anchor;
  menuState.anchor = null;
  el.hidden = true;
  el.replaceChildren();
  if (!anchor) return;
  anchor.setAttribute("aria-expanded", "false");
  if (restoreFocus && anchor.isConnected) anchor.focus();
}

function onMenuKeydown(ev) {
  const buttons = [...$("#menu").querySelectorAll("button")];
  if (ev.key === "Escape") {
    ev.preventDefault();
    closeMenu(true);
  } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    const step = ev.key === "ArrowDown" ? 1 : -1;
    const i = buttons.indexOf(document.activeElement);
    buttons[(i + step + buttons.length) % buttons.length].focus();
  } else if (ev.key === "Tab") {
    closeMenu();
  }
}

/** Where a right click happened, shaped like a DOMRect; null for the keyboard's context-menu key. */
function pointerRect(ev) {
  if (!ev.clientX && !ev.clientY) return null;
  return { left: ev.clientX, top: ev.clientY, bottom: ev.clientY };
}

// --- typing

/** The composer changed: tell the others, at most once every TYPING_SEND_MS (never per keystroke). */
function noteTyping() {
  const conv = state.convs.get(state.activeId);
  if (!conv || (conv.kind === "single" && conv.peerId === state.me.id)) return;
  if (!$("#composer-input").value.trim()) return;
  const now = Date.now();
  if (now - (typingSentAt.get(conv.id) || 0) < TYPING_SEND_MS) return;
  if (sendFrame({ type: "typing", conversation_id: conv.id })) typingSentAt.set(conv.id, now);
}

function onTypingFrame(f) {
  if (!state.convs.has(f.conversation_id) || typeof f.user_id !== "number" || f.user_id === state.me.id) return;
  let typers = typingNow.get(f.conversation_id);
  if (!typers) {
    typers = new Map();
    typingNow.set(f.conversation_id, typers);
  }
  clearTimeout(typers.get(f.user_id));
  typers.set(f.user_id, setTimeout(() => stopTyping(f.conversation_id, f.user_id), TYPING_SHOW_MS));
  scheduleRender();
}

/** The dots go when the typer's message arrives, or TYPING_SHOW_MS after their last `typing`. */
function stopTyping(cid, userId) {
  const typers = typingNow.get(cid);
  if (!typers || !typers.has(userId)) return;
  clearTimeout(typers.get(userId));
  typers.delete(userId);
  if (!typers.size) typingNow.delete(cid);
  scheduleRender();
}

function typingLabel(conv) {
  const ids = conv && typingNow.has(conv.id) ? [...typingNow.get(conv.id).keys()] : [];
  if (!ids.length) return "";
  if (ids.length === 1) return `${userName(ids[0])} is typing`;
  if (ids.length === 2) return `${userName(ids[0])} and ${userName(ids[1])} are typing`;
  return "Several people are typing";
}

/** The list shows "typing…" in place of the last message (with the name in groups). */
function typingPreview(conv) {
  const label = typingLabel(conv);
  if (!label) return "";
  return conv.kind === "single" ? "typing…" : `${label}…`;
}

// --- recall and delete for me

function findMessage(conv, messageId) {
  const id = String(messageId);
  for (const m of conv.messages.values()) if (m.message_id === id) return m;
  return null;
}

/** Offered inside the window the server allows by default; the server decides (403 with its reason). */
function canRecall(m) {
  return m.sender_id === state.me.id && !m.recalled && Date.now() - m.ts < RECALL_WINDOW_MS;
}

function openMessageMenu(conv, messageId, anchor) {
  const m = findMessage(conv, messageId);
  if (!m) return;
  const items = [];
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

/** Remove a message deleted for me from this device's view. */
function dropMessage(conv, messageId) {
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

/** A message built for the list gets its actions button (and a clickable sender name in groups). */
function decorateMessage(conv, item, el) {
  if (item.type !== "msg") return;
  const id = item.m.message_id;
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

// --- block and the profile panel

async function loadBlocked() {
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
  $("#profile-body").replaceChildren(...view.filter(Boolean));
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

// --- the open conversation: typing line, block notice, profile button

function renderConversationExtras() {
  const conv = state.convs.get(state.activeId);
  const label = typingLabel(conv);
  $("#typing").hidden = !label;
  if ($("#typing-text").textContent !== label) $("#typing-text").textContent = label;

  const peer = conv && conv.kind === "single" && conv.peerId !== state.me.id ? conv.peerId : null;
  $("#conv-info").hidden = peer === null;
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

function resetEveryday() {
  for (const typers of typingNow.values()) for (const timer of typers.values()) clearTimeout(timer);
  typingNow.clear();
  typingSentAt.clear();
  blocked.clear();
  closeMenu();
  closeProfile();
}

function wireEveryday() {
  $("#menu").addEventListener("keydown", onMenuKeydown);
  document.addEventListener("pointerdown", (ev) => {
    const anchor = menuState.anchor;
    if (anchor && !$("#menu").contains(ev.target) && !anchor.contains(ev.target)) closeMenu();
  }, true);
  window.addEventListener("resize", () => closeMenu());
  $("#messages").addEventListener("wheel", () => closeMenu(), { passive: true });

  $("#composer-input").addEventListener("input", noteTyping);

  $("#conversation-list").addEventListener("contextmenu", (ev) => {
    const item = ev.target.closest(".conv-item");
    if (!item) return;
    ev.preventDefault();
    openConvMenu(item.dataset.cid, item.querySelector(".conv-options") || item, pointerRect(ev));
  });

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

// ---------------------------------------------------------------- session

let pollTimers = [];

function showAuth(notice = "") {
  $("#chat-view").hidden = true;
  $("#auth-view").hidden = false;
  $("#auth-notice").hidden = !notice;
  $("#auth-notice").textContent = notice;
  $("#auth-password").value = "";
  setAuthMode("login");
  $("#auth-username").focus();
}

function startSession() {
  state.me = auth.data.user;
  state.convs.clear();
  state.activeId = null;
  msgDom.clear();
  $("#message-list").replaceChildren();
  $("#auth-view").hidden = true;
  $("#chat-view").hidden = false;
  $("#chat-view").classList.remove("show-conversation");
  renderAll();
  scheduleRefresh();
  socket.stopped = false;
  socket.attempt = 0;
  // Groups first so the list shows their names; the list; then the socket (which syncs everything known).
  loadBlocked().catch(() => {});
  loadGroups().catch(() => {})
    .then(() => loadConversations())
    .catch((err) => { if (err instanceof ApiError) toast(err.message); })
    .finally(() => { connect(); refreshPresence().catch(() => {}); });
  pollTimers.forEach(clearInterval);
  pollTimers = [
    setInterval(() => { refreshPresence().catch(() => {}); }, PRESENCE_POLL_MS),
    setInterval(() => { if (document.visibilityState === "visible") loadConversations().catch(() => {}); }, LIST_POLL_MS),
  ];
}

function endSession() {
  disconnect();
  clearTimeout(refreshTimer);
  pollTimers.forEach(clearInterval);
  pollTimers = [];
  for (const conv of state.convs.values()) for (const p of conv.pending) clearTimeout(p.timer);
  resetEveryday();
  state.convs.clear();
  state.users.clear();
  state.groups.clear();
  state.activeId = null;
  state.me = null;
  msgDom.clear();
  $("#message-list").replaceChildren();
  $("#conversation-list").replaceChildren();
  clearStaged();
  document.title = "GoChat";
}

function sessionLost(notice) {
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

// ---------------------------------------------------------------- wiring

function autoGrow(el) {
  el.style.height = "auto";
  el.style.height = `${Math.min(el.scrollHeight + 2, 160)}px`;
}

function submitComposer(ev) {
  ev.preventDefault();
  const input = $("#composer-input");
  const body = input.value;
  const conv = state.convs.get(state.activeId);
  if (conv && hasStagedAttachment()) {
    input.value = "";
    autoGrow(input);
    sendStaged(conv, body.trim() ? body : "", sendText);
    return;
  }
  if (!conv || !body.trim()) return;
  input.value = "";
  autoGrow(input);
  sendText(conv, body);
}

function wire() {
  $("#tab-login").addEventListener("click", () => setAuthMode("login"));
  $("#tab-register").addEventListener("click", () => setAuthMode("register"));
  $("#auth-form").addEventListener("submit", submitAuth);
  $("#logout").addEventListener("click", logout);
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

  const openFromList = (ev) => {
    const item = ev.target.closest(".conv-item");
    if (item) openConversation(item.dataset.cid);
  };
  $("#conversation-list").addEventListener("click", openFromList);
  $("#conversation-list").addEventListener("keydown", (ev) => {
    if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches(".conv-item")) { ev.preventDefault(); openFromList(ev); }
  });
  $("#back").addEventListener("click", closeConversation);

  const input = $("#composer-input");
  $("#composer").addEventListener("submit", submitComposer);
  input.addEventListener("input", () => autoGrow(input));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) submitComposer(ev);
  });
  $("#messages").addEventListener("scroll", maybeLoadOlder, { passive: true });
  initAttachments({ accessToken, refreshTokens, h, toast });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || !state.me) return;
    const conv = state.convs.get(state.activeId);
    if (conv) markRead(conv);
    reconnectNow();
    refreshListSoon(); // mute and pin changed on another device arrive with the list
  });
  window.addEventListener("focus", () => {
    const conv = state.me && state.convs.get(state.activeId);
    if (conv) markRead(conv);
  });
  window.addEventListener("online", reconnectNow);

  // Another tab signed in, out, or rotated the tokens.
  window.addEventListener("storage", (ev) => {
    if (ev.key !== STORAGE_KEY && ev.key !== null) return;
    const next = auth.read();
    if (!next) {
      if (state.me) {
        endSession();
        auth.data = null;
        showAuth("You signed out in another tab.");
      }
      return;
    }
    if (!state.me) {
      auth.data = next;
      startSession();
    } else if (next.user.id !== state.me.id) {
      location.reload();
    } else {
      auth.data = next;
      scheduleRefresh();
      renewSocketAuth(); // another tab renewed: this tab's socket moves onto the new token too
    }
  });
}

function boot() {
  wire();
  wireEveryday();
  auth.data = auth.read();
  if (auth.data) startSession();
  else showAuth();
}

boot();
