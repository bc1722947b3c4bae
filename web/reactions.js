// Reactions (docs/protocol.md, "Reactions"): the row of emoji under a message with their
// counts, a picker of a few common ones, toggling my own with a `react` frame, and the
// `reaction` frames that every member's devices get (mine included: the count moves
// when the server says so, not before).

import { h } from "./dom.js";
import { openMenu } from "./menu.js";
import { sendFrame } from "./socket.js";
import { findMessage, scheduleRender, state } from "./store.js";

// Six, as most messengers offer first; any other emoji arriving from another client is shown too.
export const COMMON_EMOJI = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/** My reaction `emoji` on message `m` on or off. */
export function toggleReaction(m, emoji) {
  const mine = (m.reactions || []).some((r) => r.emoji === emoji && r.me);
  sendFrame({ type: "react", message_id: m.message_id, emoji, op: mine ? "remove" : "add" });
}

/**
 * A `reaction` frame: one user's emoji added to or removed from a message. The list keeps
 * the order of first use; an emoji nobody uses any more goes.
 */
export function applyReaction(f) {
  const conv = state.convs.get(f.conversation_id);
  const m = conv && findMessage(conv, f.message_id);
  if (!m || typeof f.emoji !== "string") return;
  const byMe = f.user_id === state.me.id;
  const list = Array.isArray(m.reactions) ? m.reactions.map((r) => ({ ...r })) : [];
  let entry = list.find((r) => r.emoji === f.emoji);
  if (f.op === "add") {
    if (entry && byMe && entry.me) return; // already counted (a second device, a repeat)
    if (!entry) list.push(entry = { emoji: f.emoji, count: 0, me: false });
    entry.count += 1;
    if (byMe) entry.me = true;
  } else if (f.op === "remove" && entry) {
    if (byMe && !entry.me) return;
    entry.count -= 1;
    if (byMe) entry.me = false;
  } else {
    return;
  }
  m.reactions = list.filter((r) => r.count > 0);
  scheduleRender();
}

/** The picker by `anchor`: the common emoji, one button each. */
export function openReactionPicker(m, anchor) {
  openMenu(anchor, "React with", COMMON_EMOJI.map((emoji) => ({
    label: emoji, run: () => toggleReaction(m, emoji),
  })), null, "emoji-picker");
}

/** The row under a message: one toggle per emoji in use, then the button that opens the picker. */
export function reactionRow(m) {
  if (m.recalled) return null;
  const used = (m.reactions || []).length > 0;
  // With none yet, only the ☺+ button, beside the bubble and shown on hover or focus (style.css).
  const row = h("div", { class: used ? "reactions" : "reactions empty" }, (m.reactions || []).map((r) => h("button", {
    type: "button", class: "reaction", "aria-pressed": String(Boolean(r.me)), dataset: { emoji: r.emoji },
    "aria-label": `${r.emoji} ${r.count}${r.me ? ", yours: remove" : ": add yours"}`,
    onclick: () => toggleReaction(m, r.emoji),
  }, h("span", { class: "emoji", text: r.emoji }), h("span", { class: "count", text: String(r.count) }))));
  row.append(h("button", {
    type: "button", class: "react-btn", "aria-label": "Add a reaction", "aria-haspopup": "menu", title: "React",
    onclick: (ev) => openReactionPicker(m, ev.currentTarget),
  }, "☺+"));
  return row;
}

/** What a message's reactions look like, for the redraw signature of its list item. */
export function reactionSig(m) {
  return (m.reactions || []).map((r) => `${r.emoji}:${r.count}:${r.me ? 1 : 0}`).join(",");
}
