// Browser notifications for new messages while the tab is hidden. Permission is asked
// only from the bell button (browsers ignore, or hold against the site, a request made
// without a click); muted conversations and my own messages never notify.

import { $, toast } from "./dom.js";
import { convTitle, state, userName } from "./store.js";

const PREF_KEY = "gochat.notify.v1";  // "on" once the person turned them on in this browser

// What a click on a notification does (open the conversation), set by app.js: the views
// sit above this module.
let openHook = () => {};

export function onNotificationClick(open) {
  openHook = open;
}

function supported() {
  return "Notification" in window;
}

/** On once the person turned them on here with the bell, while the browser allows them. */
export function notificationsOn() {
  return supported() && Notification.permission === "granted" && localStorage.getItem(PREF_KEY) === "on";
}

/** The bell: turning on asks for permission (a click is the gesture browsers want; asked
 * while already granted it answers at once), turning off only remembers it here. */
async function toggleNotifications() {
  if (!supported()) {
    toast("This browser cannot show notifications.");
  } else if (notificationsOn()) {
    localStorage.setItem(PREF_KEY, "off");
    toast("Notifications are off.");
  } else if (Notification.permission === "denied" || await Notification.requestPermission() !== "granted") {
    toast("Notifications are blocked for this site in the browser's settings.");
  } else {
    localStorage.setItem(PREF_KEY, "on");
    toast("You will be notified of new messages while GoChat is in the background.");
  }
  renderBell();
}

export function renderBell() {
  const on = notificationsOn();
  const bell = $("#notify");
  bell.setAttribute("aria-pressed", String(on));
  const label = on ? "Notifications on (click to turn off)" : "Turn on notifications";
  bell.title = label;
  bell.setAttribute("aria-label", label);
}

function previewText(m) {
  if (m.kind === "text") return m.body;
  return m.body ? `[${m.kind}] ${m.body}` : `[${m.kind}]`;
}

/** A new message pushed to this tab: a notification if the tab is hidden and the conversation not muted. */
export function notifyMessage(conv, m) {
  if (document.visibilityState !== "hidden" || conv.muted || m.sender_id === state.me.id || !notificationsOn()) return;
  const text = previewText(m).replace(/\s+/g, " ").slice(0, 200);
  const body = conv.kind === "group" ? `${userName(m.sender_id)}: ${text}` : text;
  // One per conversation (the tag): a newer message replaces the older notification.
  const note = new Notification(convTitle(conv), { body, tag: conv.id, icon: "/web/favicon.svg" });
  note.onclick = () => {
    window.focus();
    openHook(conv.id);
    note.close();
  };
}

export function wireNotifications() {
  $("#notify").addEventListener("click", toggleNotifications);
  renderBell();
}
