// The WebSocket (docs/protocol.md, "WebSocket"): connect with the access token, prove the
// connection with ping/pong, reconnect with jittered backoff, pace outgoing frames under
// the server's rate limit, and move an open socket onto a renewed token with `auth`.
// What the frames mean is frames.js' business: this module only carries them.

import { AuthLost, accessToken, auth, loseSession, refreshTokens, tokenExpiry } from "./api.js";
import { $ } from "./dom.js";

const PING_MS = 25_000;           // keep-alive; the server also refreshes presence on ping
const FRAME_RATE = 10;            // frames other than `send` a second, at most: half the server's
const FRAME_BURST = 50;           // GOCHAT_WS_FRAME_RATE/BURST defaults (20/s, bursts of 100)
const PONG_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;

// What the client does on the socket's events, set by app.js: `ready` once a socket is
// proven (resend, catch up), `frame` for each server frame, `closed` when one goes.
const handlers = { ready: () => {}, frame: () => {}, closed: () => {} };

export function onSocketEvents({ ready, frame, closed }) {
  handlers.ready = ready;
  handlers.frame = frame;
  handlers.closed = closed;
}

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

export async function connect() {
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
    noteAuthFrame(frame);
    handlers.frame(frame);
  };
  ws.onclose = (ev) => {
    if (socket.ws !== ws) return;
    socket.ws = null;
    socket.ready = false;
    clearInterval(socket.pingTimer);
    clearTimeout(socket.pongTimer);
    clearOutbox();
    handlers.closed(); // answers to what it asked died with it
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
  handlers.ready();
}

function onSocketClosed(code, token) {
  setConnState("offline", "Offline");
  if (code === 4403) {
    loseSession("This account has been disabled.");
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

/** A session started: connect() may open sockets again (disconnect() stopped it). */
export function startSocket() {
  socket.stopped = false;
  socket.attempt = 0;
}

/** Authenticated and registered: frames sent now are answered. */
export function isSocketReady() {
  return socket.ready;
}

export function reconnectNow() {
  if (socket.stopped || socket.ws) return;
  socket.attempt = 0;
  connect();
}

export function disconnect() {
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
export function sendFrame(frame) {
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

/**
 * After a `rate_limited` error that no frame of ours explains, run `retry` once in 2 s
 * (several such errors in a row still retry once); a new socket cancels it, as it syncs anyway.
 */
export function retryAfterRateLimit(retry) {
  if (outbox.retry) return;
  outbox.retry = setTimeout(() => {
    outbox.retry = null;
    retry();
  }, 2_000);
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
export function renewSocketAuth() {
  const token = auth.data && auth.data.access;
  if (!token || !socket.ready || token === socket.offered) return;
  if (tokenExpiry(token) <= socket.expiresAt) return; // nothing to gain: already authorised that long
  socket.offered = token;
  sendFrame({ type: "auth", token });
}

/** The socket's own part of a frame: how long it is authorised, and a refused renewal offered again. */
function noteAuthFrame(f) {
  if (f.type === "auth_ok" && typeof f.expires_at === "number") socket.expiresAt = Math.max(socket.expiresAt, f.expires_at);
  if (f.type === "error" && (f.code === "rate_limited" || f.code === "unavailable") && socket.offered
      && tokenExpiry(socket.offered) > socket.expiresAt) {
    // The renewal may be the frame refused: offer it again shortly (the same token twice is harmless).
    socket.offered = null;
    setTimeout(renewSocketAuth, 2_000);
  }
}
