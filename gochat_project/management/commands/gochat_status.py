import sys
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection

from gochat_project.infra import kafka, redis_client
from gochat_project.ops import services


class Command(BaseCommand):
    help = ("One screen of GoChat's state: MySQL, Redis and Kafka reachable; consumer-group lag per topic; "
            "online users and connections per gateway; messages stored in the last minute. "
            "Exit code 1 when a dependency is unreachable.")

    def handle(self, *args: Any, **options: Any) -> None:
        ok = True
        ok &= self._check("mysql", lambda: connection.cursor().execute("SELECT 1"))
        ok &= self._check("redis", lambda: redis_client.client().ping())
        ok &= self._check("kafka", lambda: services.ensure_topics(kafka.all_topics()) and None)
        if ok:
            self._lag()
            self._gateways()
            self._messages()
        sys.exit(0 if ok else 1)

    def _check(self, name: str, probe: Any) -> bool:
        try:
            probe()
        except Exception as exc:
            self.stdout.write(f"{name:8} UNREACHABLE ({type(exc).__name__}: {str(exc)[:80]})")
            return False
        self.stdout.write(f"{name:8} ok")
        return True

    def _lag(self) -> None:
        from messaging.logic import logic_group_id

        self.stdout.write("\nconsumer lag (records not yet committed)")
        groups = [(logic_group_id(), kafka.upstream_topic()),
                  (kafka.celery_consumer_group(kafka.persist_topic()), kafka.persist_topic()),
                  (kafka.celery_consumer_group(kafka.fanout_topic()), kafka.fanout_topic())]
        for group, topic in groups:
            try:
                lag: object = kafka.consumer_group_lag(group, topic, timeout=3)
            except Exception as exc:
                lag = f"unknown ({type(exc).__name__})"
            self.stdout.write(f"  {topic:45} {group:45} {lag}")

    def _gateways(self) -> None:
        from fanout import presence

        self.stdout.write(f"\nonline users: {presence.online_count()}")
        now = time.time()
        for gateway_id, stats in sorted(presence.gateway_stats().items()):
            age = now - stats["ts"]
            state = "" if age < 60 else "  (stale: no heartbeat for a minute)"
            self.stdout.write(f"  gateway {gateway_id:10} connections {int(stats['connections']):7} "
                              f"users {int(stats['users']):7}  as of {age:.0f}s ago{state}")

    def _messages(self) -> None:
        from messaging.models import Message

        since = int((time.time() - 60) * 1000)
        self.stdout.write(f"\nmessages stored in the last minute: {Message.objects.filter(ts__gte=since).count()}")
