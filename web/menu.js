// A small popup menu, shared by messages and the conversation list: opens by its button
// (or at a right click), moves with the arrow keys, closes on Escape, a click elsewhere,
// a resize or a scroll of the messages.

import { $, h } from "./dom.js";

const menuState = { anchor: null };

/**
 * Open a menu of `items` ({label, run, danger?}) by `anchor`, or at a pointer position `at`;
 * `variant` is an extra class (`emoji-picker`: one row of emoji).
 */
export function openMenu(anchor, label, items, at = null, variant = "") {
  if (menuState.anchor === anchor) {
    closeMenu(true); // the same button again: toggle
    return;
  }
  closeMenu();
  const el = $("#menu");
  el.setAttribute("aria-label", label);
  el.className = variant ? `menu ${variant}` : "menu";
  el.replaceChildren(...items.map((item) => h("button", {
    type: "button", role: "menuitem", class: item.danger ? "menu-item danger-text" : "menu-item",
    onclick: () => { closeMenu(true); item.run(); },
  }, item.label)));
  el.hidden = false;
  const rect = at || anchor.getBoundingClientRect();
  const left = Math.max(8, Math.min(rect.left, window.innerWidth - el.offsetWidth - 8));
  const fitsBelow = rect.bottom + 4 + el.offsetHeight <= window.innerHeight - 8;
  el.style.left = `${left}px`;
  el.style.top = `${fitsBelow ? rect.bottom + 4 : Math.max(8, rect.top - el.offsetHeight - 4)}px`;
  menuState.anchor = anchor;
  anchor.setAttribute("aria-expanded", "true");
  el.querySelector("button").focus();
}

export function closeMenu(restoreFocus = false) {
  const el = $("#menu");
  const anchor = menuState.anchor;
  menuState.anchor = null;
  el.hidden = true;
  el.replaceChildren();
  if (!anchor) return;
  anchor.setAttribute("aria-expanded", "false");
  if (restoreFocus && anchor.isConnected) anchor.focus();
}

function onMenuKeydown(ev) {
  const buttons = [...$("#menu").querySelectorAll("button")];
  if (ev.key === "Escape") {
    ev.preventDefault();
    closeMenu(true);
  } else if (["ArrowDown", "ArrowUp", "ArrowRight", "ArrowLeft"].includes(ev.key)) {
    ev.preventDefault();
    const step = ev.key === "ArrowDown" || ev.key === "ArrowRight" ? 1 : -1;
    const i = buttons.indexOf(document.activeElement);
    buttons[(i + step + buttons.length) % buttons.length].focus();
  } else if (ev.key === "Tab") {
    closeMenu();
  }
}

/** Where a right click happened, shaped like a DOMRect; null for the keyboard's context-menu key. */
export function pointerRect(ev) {
  if (!ev.clientX && !ev.clientY) return null;
  return { left: ev.clientX, top: ev.clientY, bottom: ev.clientY };
}

export function wireMenu() {
  $("#menu").addEventListener("keydown", onMenuKeydown);
  document.addEventListener("pointerdown", (ev) => {
    const anchor = menuState.anchor;
    if (anchor && !$("#menu").contains(ev.target) && !anchor.contains(ev.target)) closeMenu();
  }, true);
  window.addEventListener("resize", () => closeMenu());
  $("#messages").addEventListener("wheel", () => closeMenu(), { passive: true });
}
