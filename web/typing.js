// Typing indicators (docs/web-client.md, "typing"): send `typing` while the composer holds
// text, at most every TYPING_SEND_MS, and keep who is typing where from the `typing` frames.

import { $ } from "./dom.js";
import { sendFrame } from "./socket.js";
import { scheduleRender, state, userName } from "./store.js";

const TYPING_SEND_MS = 3_200;     // at most one `typing` frame this often (the server relays one per 3 s)
const TYPING_SHOW_MS = 5_000;     // "… is typing" stays this long after the last `typing` frame

const typingNow = new Map();    // conversation_id -> Map(user_id -> timer): who is typing there right now
const typingSentAt = new Map(); // conversation_id -> when this tab last sent `typing` there

/** The composer changed: tell the others, at most once every TYPING_SEND_MS (never per keystroke). */
export function noteTyping() {
  const conv = state.convs.get(state.activeId);
  if (!conv || (conv.kind === "single" && conv.peerId === state.me.id)) return;
  if (!$("#composer-input").value.trim()) return;
  const now = Date.now();
  if (now - (typingSentAt.get(conv.id) || 0) < TYPING_SEND_MS) return;
  if (sendFrame({ type: "typing", conversation_id: conv.id })) typingSentAt.set(conv.id, now);
}

export function onTypingFrame(f) {
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
export function stopTyping(cid, userId) {
  const typers = typingNow.get(cid);
  if (!typers || !typers.has(userId)) return;
  clearTimeout(typers.get(userId));
  typers.delete(userId);
  if (!typers.size) typingNow.delete(cid);
  scheduleRender();
}

export function typingLabel(conv) {
  const ids = conv && typingNow.has(conv.id) ? [...typingNow.get(conv.id).keys()] : [];
  if (!ids.length) return "";
  if (ids.length === 1) return `${userName(ids[0])} is typing`;
  if (ids.length === 2) return `${userName(ids[0])} and ${userName(ids[1])} are typing`;
  return "Several people are typing";
}

/** The list shows "typing…" in place of the last message (with the name in groups). */
export function typingPreview(conv) {
  const label = typingLabel(conv);
  if (!label) return "";
  return conv.kind === "single" ? "typing…" : `${label}…`;
}

export function resetTyping() {
  for (const typers of typingNow.values()) for (const timer of typers.values()) clearTimeout(timer);
  typingNow.clear();
  typingSentAt.clear();
}
