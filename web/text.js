// A message's text as DOM nodes: links made clickable and mentions highlighted, every
// piece built as a text node or an element whose text is set with textContent, so a body
// never reaches the page as HTML.

import { h } from "./dom.js";

// A candidate link: starts with a scheme we allow, runs to the next whitespace or quote.
// Anything else (javascript:, data:, a bare "www.") stays plain text.
const LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"'`]+/gi;
const LINK_SCHEMES = new Set(["http:", "https:", "mailto:"]);
// Punctuation that ends a sentence, not a URL: "see https://x.org." links to x.org.
const TRAILING = /[.,;:!?)\]}]+$/;

/** The href for a matched link, or null when the browser does not parse it as one we allow. */
export function linkHref(text) {
  try {
    const url = new URL(text);
    return LINK_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function linkNode(text) {
  const href = linkHref(text);
  return href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "msg-link", text }) : text;
}

/** Split `text` into strings and link elements. */
function linkify(text) {
  const out = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    const raw = match[0].replace(TRAILING, "");
    if (!raw) continue;
    if (match.index > at) out.push(text.slice(at, match.index));
    out.push(linkNode(raw));
    at = match.index + raw.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/**
 * The nodes for a text body. `mentions` maps a lower-cased username to whether it is me:
 * each `@username` of a mentioned user becomes a highlighted span (`.mention`, `.me` for me).
 */
export function richText(body, mentions = new Map()) {
  if (!mentions.size) return linkify(body);
  const out = [];
  const names = [...mentions.keys()].map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`@(${names.join("|")})(?![A-Za-z0-9_.-])`, "gi");
  let at = 0;
  for (const match of body.matchAll(pattern)) {
    if (match.index > at) out.push(...linkify(body.slice(at, match.index)));
    const me = mentions.get(match[1].toLowerCase());
    out.push(h("span", { class: me ? "mention me" : "mention", text: match[0] }));
    at = match.index + match[0].length;
  }
  if (at < body.length) out.push(...linkify(body.slice(at)));
  return out;
}
