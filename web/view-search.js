// Message search (docs/protocol.md, "Search"): the sidebar's search box also looks through
// messages; a result opens its conversation scrolled to the message, highlighted.

import { ApiError, api } from "./api.js";
import { $, debounce, h, shortTime, toast } from "./dom.js";
import { convTitle, ensureConv, state, userName, validCid } from "./store.js";
import { closeSearch, renderList } from "./view-list.js";
import { openConversationAt } from "./view-messages.js";

const MIN_QUERY = 2;    // one letter matches nearly everything: wait for a second
const RESULTS = 20;     // one page; the server's default

let searchSeq = 0;

/** `text` with each occurrence of a query term wrapped in <mark> (all as text nodes). */
function marked(text, terms) {
  const words = terms.filter(Boolean).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) return [text];
  const out = [];
  let at = 0;
  for (const match of text.matchAll(new RegExp(words.join("|"), "gi"))) {
    if (match.index > at) out.push(text.slice(at, match.index));
    out.push(h("mark", { text: match[0] }));
    at = match.index + match[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

function hitItem(m, terms) {
  const conv = ensureConv(m.conversation_id);
  const open = () => {
    closeSearch();
    renderList();
    openConversationAt(m.conversation_id, m.seq);
  };
  const who = m.sender_id === state.me.id ? "You" : userName(m.sender_id);
  const text = (m.body || (m.extra && m.extra.name) || `[${m.kind}]`).replace(/\s+/g, " ");
  return h("li", {
    class: "search-hit", role: "button", tabindex: "0",
    dataset: { cid: m.conversation_id, seq: String(m.seq), messageId: String(m.message_id) },
    onclick: open,
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } },
  },
  h("div", { class: "conv-top" },
    h("span", { class: "conv-name", text: convTitle(conv) }),
    h("time", { class: "conv-time", text: shortTime(m.ts) })),
  h("div", { class: "hit-text" }, `${who}: `, marked(text, terms)));
}

const runSearch = debounce(async (query) => {
  const mine = ++searchSeq;
  const section = $("#message-section");
  if (query.length < MIN_QUERY) {
    section.hidden = true;
    $("#message-results").replaceChildren();
    return;
  }
  try {
    const data = await api(`/api/search?q=${encodeURIComponent(query)}&limit=${RESULTS}`);
    if (mine !== searchSeq || state.searchQuery !== query) return;
    const hits = (data.results || []).filter((m) => validCid(m.conversation_id));
    const terms = query.split(/[\s\u3000]+/);
    $("#message-results").replaceChildren(...hits.map((m) => hitItem(m, terms)));
    $("#message-empty").hidden = hits.length > 0;
    section.hidden = false;
  } catch (err) {
    if (err instanceof ApiError && err.status !== 400) toast(err.message);
  }
}, 300);

export function wireSearch() {
  $("#user-search").addEventListener("input", () => runSearch($("#user-search").value.trim()));
}
