// Tokens and REST (docs/protocol.md, "Sessions"): the access and refresh JWTs, kept in
// localStorage and shared by every tab of this origin, renewed before they expire, and
// `api()`, which sends one REST call with the access token and retries it once on a 401.

export const STORAGE_KEY = "gochat.auth.v1";
const REFRESH_MARGIN_MS = 60_000; // refresh the access token this long before it expires

// What the rest of the client does when the tokens change, set by app.js: the open socket
// moves onto a renewed token; a lost session goes back to the sign-in form with a notice.
const hooks = { renewed: () => {}, lost: () => {} };

export function onAuthEvents({ renewed, lost }) {
  hooks.renewed = renewed;
  hooks.lost = lost;
}

/** End the session here and in every tab, showing `notice` on the sign-in form. */
export function loseSession(notice) {
  hooks.lost(notice);
}

// ---------------------------------------------------------------- tokens (shared by every tab)

function tokenClaims(token) {
  try {
    let part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    part += "=".repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

export function tokenExpiry(token) {
  return (tokenClaims(token).exp || 0) * 1000;
}

/** How long before expiry to refresh: a minute, or a tenth of the lifetime if that is less. */
function refreshMargin(token) {
  const { exp, iat } = tokenClaims(token);
  const lifetime = exp && iat ? (exp - iat) * 1000 : 15 * 60_000;
  return Math.min(REFRESH_MARGIN_MS, lifetime / 10);
}

export class AuthLost extends Error {}

export const auth = {
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
export function refreshTokens(rejected) {
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
    hooks.renewed();
    return token;
  }, (err) => {
    if (err instanceof AuthLost) loseSession("Your session has ended. Please sign in again.");
    else scheduleRefresh(15_000);
    throw err;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

export function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  if (!auth.data) return;
  // Jittered so that several tabs do not all ask at the same instant.
  const margin = refreshMargin(auth.data.access);
  const due = tokenExpiry(auth.data.access) - Date.now() - margin - Math.random() * (margin / 4);
  refreshTimer = setTimeout(() => { refreshTokens().catch(() => {}); }, Math.max(1_000, delay ?? due));
}

export function cancelRefresh() {
  clearTimeout(refreshTimer);
}

export async function accessToken() {
  if (!auth.data) throw new AuthLost();
  if (tokenExpiry(auth.data.access) - Date.now() < refreshMargin(auth.data.access) / 2) return refreshTokens();
  return auth.data.access;
}

// ---------------------------------------------------------------- REST

export class ApiError extends Error {
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

export async function api(path, { method = "GET", body, anonymous = false } = {}) {
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
