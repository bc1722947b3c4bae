import os
import shutil
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gochat_project.ops import services


class Command(BaseCommand):
    help = ("Run one gateway process (Daphne: HTTP API + /ws) with its own gateway id, so several gateways can "
            "run on one machine. Creates the gateway's downstream topic if it is missing.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--gateway-id", required=True, help="unique id; the gateway consumes its own topic")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--metrics-port", type=int, default=0,
                            help="serve Prometheus /metrics on 127.0.0.1:PORT (GOCHAT_METRICS_ADDR: another address)")

    def handle(self, *args: Any, gateway_id: str, port: int, host: str, metrics_port: int, **options: Any) -> None:
        if not gateway_id.replace("-", "").replace("_", "").isalnum() or len(gateway_id) > 40:
            raise CommandError("--gateway-id must be 1-40 characters of letters, digits, - and _")
        from gochat_project.infra import kafka

        try:
            services.ensure_topics({kafka.downstream_topic(gateway_id): 1})
        except services.ServiceUnavailable as exc:
            raise CommandError(str(exc)) from exc
        daphne = shutil.which("daphne", path=os.path.dirname(sys.executable)) or shutil.which("daphne")
        if daphne is None:
            raise CommandError("daphne is not installed in this environment")
        env = {**os.environ, "GOCHAT_GATEWAY_ID": gateway_id}
        if metrics_port:
            env["GOCHAT_METRICS_PORT"] = str(metrics_port)
        self.stdout.write(f"gateway {gateway_id} on {host}:{port}")
        sys.stdout.flush()
        # Daphne's own access log would print query strings (tokens); GoChat logs access itself.
        os.execve(daphne, [daphne, "-b", host, "-p", str(port), "--access-log", "/dev/null",
                           "gochat_project.asgi:application"], env)
