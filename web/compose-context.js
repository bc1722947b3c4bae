// Replying and editing (docs/protocol.md, "Reply" and "Edit"): the bar above the composer
// ("Replying to …" / "Editing", with ✕), the quote shown above a reply, and the `edit`
// frames every member's devices get.

import { ApiError, api } from "./api.js";
import { $, h, toast } from "./dom.js";
import { findMessage, scheduleRender, state, userName } from "./store.js";

// The server's default GOCHAT_EDIT_WINDOW_S (not sent to clients): Edit is offered inside
// it; the server decides (403 with its reason).
const EDIT_WINDOW_MS = 3_600_000;
const QUOTE_CHARS = 120;

// What the composer is doing besides a plain send: {mode: "reply" | "edit", cid, m}.
let context = null;

// Scrolls to a message, loading history back as needed (view-messages.js, above this module).
let showHook = () => {};

export function onQuoteClick(show) {
  showHook = show;
}

export function canEdit(m) {
  return m.sender_id === state.me.id && m.kind === "text" && !m.recalled && Date.now() - m.ts < EDIT_WINDOW_MS;
}

function input() {
  return $("#composer-input");
}

function setContext(next) {
  context = next;
  renderComposerContext();
  input().focus();
}

export function startReply(conv, m) {
  setContext({ mode: "reply", cid: conv.id, m });
}

export function startEdit(conv, m) {
  setContext({ mode: "edit", cid: conv.id, m });
  input().value = m.body;
  input().dispatchEvent(new Event("input")); // the composer grows to fit
}

export function cancelContext() {
  const wasEdit = context && context.mode === "edit";
  context = null;
  if (wasEdit) {
    input().value = "";
    input().dispatchEvent(new Event("input"));
  }
  renderComposerContext();
}

/** The reply a send in `conv` carries: {message_id, seq, sender_id} of the quoted message, or null. */
export function replyTarget(conv) {
  if (!context || context.mode !== "reply" || context.cid !== conv.id) return null;
  const { message_id: messageId, seq, sender_id: senderId } = context.m;
  return { message_id: messageId, seq, sender_id: senderId };
}

/** Take the composer's text as an edit, if one is under way in `conv`: true when it did. */
export function submitEdit(conv, body) {
  if (!context || context.mode !== "edit" || context.cid !== conv.id) return false;
  const m = context.m;
  cancelContext();
  if (body.trim() && body !== m.body) saveEdit(conv, m.message_id, body);
  return true;
}

async function saveEdit(conv, messageId, body) {
  try {
    // REST rather than the `edit` frame: a refusal (too late, too long) comes back to show.
    await api(`/api/messages/${encodeURIComponent(messageId)}/edit`, { method: "POST", body: { body } });
  } catch (err) {
    toast(err instanceof ApiError ? err.message : "Could not edit the message. Try again.");
  }
}

/** An `edit` frame: the message's new body, and its "edited" mark. */
export function applyEdit(f) {
  const conv = state.convs.get(f.conversation_id);
  if (!conv || typeof f.body !== "string") return;
  const m = findMessage(conv, f.message_id) || conv.messages.get(f.seq);
  if (m && String(m.message_id) === String(f.message_id) && !m.recalled) {
    m.body = f.body;
    m.edited_at = f.edited_at || Date.now();
  }
  const last = conv.lastMessage;
  if (last && String(last.message_id) === String(f.message_id) && last !== m) {
    conv.lastMessage = { ...last, body: f.body, edited_at: f.edited_at };
  }
  if (context && context.mode === "reply" && context.m.message_id === String(f.message_id)) renderComposerContext();
  scheduleRender();
}

function quoteText(m) {
  if (!m) return "Earlier message";
  if (m.recalled) return "Message recalled";
  const text = m.kind === "text" ? m.body : (m.body || (m.extra && m.extra.name) || `[${m.kind}]`);
  const flat = text.replace(/\s+/g, " ");
  return flat.length > QUOTE_CHARS ? `${flat.slice(0, QUOTE_CHARS)}…` : flat;
}

/** The quote above a reply: who and what it answers; a click scrolls to the original. */
export function replyQuote(conv, m) {
  const ref = m.reply_to;
  if (!ref || typeof ref !== "object" || m.recalled) return null;
  const original = conv.messages.get(ref.seq);
  const known = original && original.message_id === String(ref.message_id) ? original : null;
  const who = userName(ref.sender_id);
  return h("button", {
    type: "button", class: "reply-quote", dataset: { replySeq: String(ref.seq) },
    "aria-label": `Reply to ${who}: ${quoteText(known)}. Show the original`,
    onclick: () => showHook(conv.id, ref.seq),
  }, h("span", { class: "quote-who", text: who }), h("span", { class: "quote-text", text: quoteText(known) }));
}

/** What a quote shows, for the redraw signature of the reply's list item. */
export function replySig(conv, m) {
  const ref = m.reply_to;
  if (!ref || typeof ref !== "object") return "";
  const original = conv.messages.get(ref.seq);
  return `${ref.seq}|${userName(ref.sender_id)}|${original ? quoteText(original) : ""}`;
}

export function renderComposerContext() {
  const bar = $("#composer-context");
  if (context && context.cid !== state.activeId) context = null; // another conversation opened
  bar.hidden = !context;
  if (!context) {
    bar.replaceChildren();
    return;
  }
  const m = findMessage(state.convs.get(context.cid), context.m.message_id) || context.m;
  const label = context.mode === "edit" ? "Editing your message" : `Replying to ${userName(m.sender_id)}`;
  bar.replaceChildren(
    h("span", { class: "context-text" }, h("strong", { text: label }), " ", quoteText(m)),
    h("button", {
      type: "button", class: "icon-btn", id: "composer-context-cancel",
      "aria-label": context.mode === "edit" ? "Cancel the edit" : "Cancel the reply", onclick: cancelContext,
    }, "✕"));
}

export function wireComposeContext() {
  input().addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && context) {
      ev.preventDefault();
      cancelContext();
    }
  });
}
