// The members of a group ({user_id, role, muted}), fetched when the group panel or the
// mention list needs them and kept until a change made here asks for them again.

import { api } from "./api.js";
import { getUser, scheduleRender, state } from "./store.js";

const MAX_PAGES = 10;      // 10 pages of 200: the panel lists the first 2,000 members
const PAGE_SIZE = 200;
const FETCH_NAMES_UP_TO = 200; // beyond this a group's names are fetched as they are shown

const members = new Map();   // group id -> [{user_id, role, muted, joined_at}]
const inflight = new Map();  // group id -> Promise

/** The members of group `groupId` (cached; `force` asks the server again). */
export function groupMembers(groupId, { force = false } = {}) {
  if (!force && members.has(groupId)) return Promise.resolve(members.get(groupId));
  if (inflight.has(groupId)) return inflight.get(groupId);
  const p = (async () => {
    const found = [];
    let path = `/api/groups/${encodeURIComponent(groupId)}/members?page_size=${PAGE_SIZE}`;
    for (let page = 0; path && page < MAX_PAGES; page++) {
      const data = await api(path);
      found.push(...(data.results || []));
      path = data.next ? (({ pathname, search }) => pathname + search)(new URL(data.next, location.href)) : null;
    }
    members.set(groupId, found);
    if (found.length <= FETCH_NAMES_UP_TO) for (const m of found) getUser(m.user_id);
    scheduleRender();
    return found;
  })().finally(() => inflight.delete(groupId));
  inflight.set(groupId, p);
  return p;
}

/** The members known without asking (null until fetched). */
export function knownMembers(groupId) {
  return members.get(groupId) || null;
}

export function myRole(groupId) {
  const me = (members.get(groupId) || []).find((m) => m.user_id === state.me.id);
  return me ? me.role : null;
}

export function forgetMembers(groupId = null) {
  if (groupId === null) members.clear();
  else members.delete(groupId);
}
