// Live presence (docs/protocol.md, "Live presence"): the socket subscribes to the peers
// of the conversations in view with `presence_subscribe`, and each `presence` frame moves
// a dot. Until a server has answered one subscription with a `presence` frame (an older
// server does not know the frame), session.js' poll of GET /api/users/{id} stays on.

import { sendFrame } from "./socket.js";
import { scheduleRender, sortedConvs, state } from "./store.js";

const MAX_SUBSCRIBED = 200; // the server keeps at most 200 ids a connection

let subscribedSig = "";     // the set last sent on this socket
let live = false;           // a `presence` frame has come: polling is not needed

export function presenceIsLive() {
  return live;
}

/** The peers whose dots are in view: the open 1:1 first, then the list from the top. */
function watchedPeers() {
  const peers = new Set();
  const active = state.convs.get(state.activeId);
  if (active && active.kind === "single") peers.add(active.peerId);
  for (const conv of sortedConvs()) {
    if (peers.size >= MAX_SUBSCRIBED + 1) break;
    if (conv.kind === "single") peers.add(conv.peerId);
  }
  peers.delete(state.me.id);
  return [...peers].slice(0, MAX_SUBSCRIBED).sort((a, b) => a - b);
}

/** Send the subscription if the set changed (a new frame replaces the server's set). */
export function syncPresenceSubscription() {
  if (!state.me) return;
  const ids = watchedPeers();
  const sig = ids.join(",");
  if (sig === subscribedSig) return;
  if (sendFrame({ type: "presence_subscribe", user_ids: ids })) subscribedSig = sig; // offline: again when ready
}

/** A socket is ready: its subscription starts empty, so send the set again. */
export function resubscribePresence() {
  subscribedSig = "";
  syncPresenceSubscription();
}

/** A `presence` frame: {user_id, online, last_seen}. */
export function applyPresence(f) {
  if (typeof f.user_id !== "number") return;
  live = true;
  const user = state.users.get(f.user_id);
  if (!user) return; // not shown yet: its fetch brings `online` with the name
  state.users.set(f.user_id, { ...user, online: Boolean(f.online), last_seen: f.last_seen ?? null });
  scheduleRender();
}

export function resetPresence() {
  subscribedSig = "";
  live = false;
}
