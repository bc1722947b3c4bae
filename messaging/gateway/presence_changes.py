"""Live presence, the publishing side: a gateway that sees a user come online (a first
connect), go offline (a last disconnect) or run out (its sweep of `online`, after a
crash of the user's gateway) notes it here; one task publishes the noted changes in
batches, off the send path:

1. the offline users' `last_seen` to MySQL, one UPDATE for the batch;
2. who watches the changed users: one pipelined Redis round trip for the batch
   (`watchers:{user}`, fanout/presence.py);
3. one `presence` item per (user, watching gateway) on that gateway's downstream topic,
   one Kafka record per gateway for the batch (fanout/downstream.py), never one per
   subscriber: the receiving gateway finds its subscribed sockets in memory
   (runtime.LocalConnections.presence_targets).

A gateway restart, thousands of reconnects, thus costs one round trip per store per
batch, not per connection or subscriber. A batch that fails is logged and dropped:
presence pushes are best effort, like message pushes; a client's next
`presence_subscribe` answers with the current state."""

import asyncio
import logging
import time

import orjson

from accounts import selectors as account_selectors
from accounts import services as account_services
from fanout import presence
from fanout.downstream import Deliveries, control_produce
from messaging import protocol

log = logging.getLogger(__name__)

# How long the first change of a batch waits for more: a reconnect storm then costs a
# few batches a second, and a lone change still reaches subscribers well within 1 s
# (measured end to end in tests/messaging/test_presence.py).
BATCH_S = 0.02


class PresenceChanges:
    def __init__(self) -> None:
        self._pending: dict[int, tuple[bool, int | None, int]] = {}  # user -> (online, last_seen, seen at ms)
        self._wake = asyncio.Event()

    def note(self, user_id: int, online: bool, last_seen: int | None = None) -> None:
        """A user came online, or went offline (last_seen: ms). A later note of the same
        user in the same batch replaces the earlier: subscribers get the net state."""
        self._pending[user_id] = (online, last_seen, int(time.time() * 1000))
        self._wake.set()

    async def run(self) -> None:
        """Publish the noted changes, one batch at a time (so a user's changes keep their order)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_S)
            self._wake.clear()
            batch, self._pending = self._pending, {}
            try:
                await _publish(batch)
            except Exception:
                log.exception("presence changes of %d users not published", len(batch))


async def _publish(batch: dict[int, tuple[bool, int | None, int]]) -> None:
    offline = {uid: last_seen for uid, (online, last_seen, _) in batch.items() if not online and last_seen}
    if offline:  # before the push: a client that reads GET /api/users/{id} on it sees the same time
        await _record_last_seen(offline)
    watchers = await presence.watchers_of(list(batch))
    if not watchers:
        return
    stored = await users_last_seen([uid for uid in watchers if batch[uid][0]])  # online users keep their last one
    deliveries = Deliveries()
    for uid, gateways in watchers.items():
        online, last_seen, at_ms = batch[uid]
        frame = orjson.dumps(protocol.presence_frame(uid, online, stored.get(uid) if online else last_seen)).decode()
        for gateway_id in gateways:
            deliveries.to_watchers(gateway_id, frame, uid, at_ms)
    await asyncio.to_thread(control_produce, deliveries)


async def _record_last_seen(seen: dict[int, int]) -> None:
    from messaging.gateway.consumer import database_sync_to_async  # the consumer imports this module's runtime

    await database_sync_to_async(account_services.users_last_seen_record)(seen=seen)


async def users_last_seen(user_ids: list[int]) -> dict[int, int | None]:
    """The stored last_seen of these users (None: never seen offline), from the event loop."""
    if not user_ids:
        return {}
    from messaging.gateway.consumer import database_sync_to_async

    return await database_sync_to_async(account_selectors.users_last_seen)(user_ids=user_ids)
