// GoChat web client: native ES modules, no framework, no build step (docs/web-client.md,
// "Files", says what each module holds). The contract it follows is docs/protocol.md
// (REST under /api, WebSocket at /ws). Every piece of user data reaches the page through
// textContent or text nodes, never as HTML.
//
// This entry wires the modules together: the lower ones (api, socket, store) call up to
// the views only through the hooks set here, so no module imports one above it.

import { STORAGE_KEY, auth, onAuthEvents, scheduleRefresh } from "./api.js";
import { onQuoteClick, renderComposerContext, wireComposeContext } from "./compose-context.js";
import { abandonSyncs, catchUp, handleFrame } from "./frames.js";
import { wireMentions } from "./mentions.js";
import { wireMenu } from "./menu.js";
import { onNotificationClick, wireNotifications } from "./notify.js";
import { syncPresenceSubscription } from "./presence.js";
import { endSession, sessionLost, showAuth, startSession, wireSession } from "./session.js";
import { onSocketEvents, reconnectNow, renewSocketAuth } from "./socket.js";
import { markRead, refreshListSoon, setRenderer, state, unreadOf } from "./store.js";
import { wireComposer } from "./view-composer.js";
import { renderList, renderMe, wireList } from "./view-list.js";
import { renderGroupPanel, wireGroupPanel } from "./view-group.js";
import {
  openConversation, renderConversation, renderTypingLine, showMessage, wireMessages,
} from "./view-messages.js";
import { wirePeople } from "./view-people.js";
import { renderBlockNotice, wireProfile } from "./view-profile.js";
import { wireSearch } from "./view-search.js";

/** Draw the whole page from the state (store.js' scheduleRender batches the calls). */
function renderAll({ stick = false } = {}) {
  if (!state.me) return;
  renderMe();
  renderList();
  renderConversation({ stick });
  renderTypingLine();
  renderBlockNotice();
  renderGroupPanel();
  renderComposerContext();
  syncPresenceSubscription(); // the dots in view changed: watch their people
  const total = [...state.convs.values()].reduce((n, c) => n + (c.muted ? 0 : unreadOf(c)), 0);
  document.title = total ? `(${total}) GoChat` : "GoChat";
}

/** The tab coming back, the network coming back, and other tabs of this origin. */
function wireWindow() {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || !state.me) return;
    const conv = state.convs.get(state.activeId);
    if (conv) markRead(conv);
    reconnectNow();
    refreshListSoon(); // mute and pin changed on another device arrive with the list
  });
  window.addEventListener("focus", () => {
    const conv = state.me && state.convs.get(state.activeId);
    if (conv) markRead(conv);
  });
  window.addEventListener("online", reconnectNow);

  // Another tab signed in, out, or rotated the tokens.
  window.addEventListener("storage", (ev) => {
    if (ev.key !== STORAGE_KEY && ev.key !== null) return;
    const next = auth.read();
    if (!next) {
      if (state.me) {
        endSession();
        auth.data = null;
        showAuth("You signed out in another tab.");
      }
      return;
    }
    if (!state.me) {
      auth.data = next;
      startSession();
    } else if (next.user.id !== state.me.id) {
      location.reload();
    } else {
      auth.data = next;
      scheduleRefresh();
      renewSocketAuth(); // another tab renewed: this tab's socket moves onto the new token too
    }
  });
}

function boot() {
  setRenderer(renderAll);
  onAuthEvents({ renewed: renewSocketAuth, lost: sessionLost });
  onSocketEvents({ ready: catchUp, frame: handleFrame, closed: abandonSyncs });
  wireSession();
  wirePeople();
  wireSearch();
  wireMessages();
  wireMentions(); // before the composer: its keys (Enter picks a name) come first
  wireComposeContext();
  wireComposer();
  wireWindow();
  wireMenu();
  wireList();
  wireProfile();
  wireGroupPanel();
  wireNotifications();
  onNotificationClick(openConversation);
  onQuoteClick(showMessage);
  auth.data = auth.read();
  if (auth.data) startSession();
  else showAuth();
}

boot();
