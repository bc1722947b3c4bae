// What the server's frames do to the state (docs/protocol.md, "Server frames"), and what
// the client does when a socket is proven or lost. socket.js carries the frames here.

import { applyEdit } from "./compose-context.js";
import { toast } from "./dom.js";
import { notifyMessage } from "./notify.js";
import { applyPresence, resubscribePresence } from "./presence.js";
import { applyReaction } from "./reactions.js";
import { retryAfterRateLimit, sendFrame } from "./socket.js";
import {
  addMessage, applyRecall, dropMessage, ensureConv, findPending, loadConversations, markRead, requestSync,
  resolvePending, scheduleRender, sendFrameOf, state, validCid,
} from "./store.js";
import { onTypingFrame, stopTyping } from "./typing.js";

/** A socket is proven: what was typed offline goes out, and every conversation catches up. */
export function catchUp() {
  // Sends typed while offline go out now (same client_msg_id: the server de-duplicates).
  for (const conv of state.convs.values()) {
    for (const p of conv.pending) if (p.status === "pending") sendFrame(sendFrameOf(conv, p));
  }
  // Catch up: every known conversation from the last seq we saw, and the list for new ones.
  for (const conv of state.convs.values()) requestSync(conv);
  loadConversations().catch(() => {});
  resubscribePresence(); // a new socket watches nobody yet
  const active = state.convs.get(state.activeId);
  if (active) markRead(active);
}

/** A socket closed: the `sync` answers it was waiting for will not come. */
export function abandonSyncs() {
  for (const conv of state.convs.values()) conv.syncing = false;
}

/** One frame from the server (socket.js has already taken `pong` and noted `auth_ok`). */
export function handleFrame(f) {
  switch (f.type) {
    case "message": {
      const m = f.message;
      if (m) stopTyping(m.conversation_id, m.sender_id);
      if (addMessage(m, "push")) {
        const conv = state.convs.get(m.conversation_id);
        if (conv && Array.isArray(m.mentions) && m.mentions.includes(state.me.id) && m.sender_id !== state.me.id) {
          conv.unreadMentions += 1;
        }
        if (conv && conv.id === state.activeId) markRead(conv);
        if (conv) notifyMessage(conv, m);
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
          reply_to: p.replyTo || null, mentions: p.mentions || [], reactions: [], edited_at: null,
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
    case "edit":
      applyEdit(f);
      break;
    case "reaction":
      applyReaction(f);
      break;
    case "presence":
      applyPresence(f);
      break;
    case "hidden": {
      const conv = state.convs.get(f.conversation_id);
      if (!conv || !f.message_id) break;
      dropMessage(conv, f.message_id);
      scheduleRender();
      break;
    }
    case "error": {
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
      } else if (f.code === "rate_limited") {
        // Some frame was dropped (socket.js' pacing should prevent it): ask again for what is open.
        retryAfterRateLimit(() => {
          for (const conv of state.convs.values()) {
            if (conv.syncing) { conv.syncing = false; requestSync(conv); }
          }
        });
      }
      break;
    }
    default:
      break;
  }
}
