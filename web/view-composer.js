// The composer: the message box (Enter sends, Shift+Enter breaks the line, it grows with
// its text), the typing frames it triggers, and the attach button (attachments.js).

import { hasStagedAttachment, initAttachments, sendStaged } from "./attachments.js";
import { cancelContext, replyTarget, submitEdit } from "./compose-context.js";
import { $ } from "./dom.js";
import { mentionsIn } from "./mentions.js";
import { sendText, state } from "./store.js";
import { noteTyping } from "./typing.js";

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
  if (conv && submitEdit(conv, body)) {
    input.value = "";
    autoGrow(input);
    return;
  }
  if (!conv || !body.trim()) return;
  input.value = "";
  autoGrow(input);
  const replyTo = replyTarget(conv);
  cancelContext();
  sendText(conv, body, "text", undefined, { replyTo, mentions: mentionsIn(conv, body) });
}

export function wireComposer() {
  const input = $("#composer-input");
  $("#composer").addEventListener("submit", submitComposer);
  input.addEventListener("input", () => autoGrow(input));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) submitComposer(ev);
  });
  input.addEventListener("input", noteTyping);
  initAttachments();
}
