"""Every place GoChat reaches into a third-party library's internals, and the one call
per process kind that installs the patches among them.

Two kinds: patches replace a function of the library at run time and are installed
here, once per process; subclasses override private methods of a class GoChat
selects by configuration (nothing to install, but just as tied to the version). Each
entry says what it touches, the version it was written against, why, the upstream
issue if there is one, and the test that proves it. The versions are pinned in
constraints.txt, and tests/unit/test_patches.py fails when an installed version
differs from the one an entry was written against: an upgrade is the moment to
re-read the entry, re-run its test, and drop it if upstream made it unnecessary.
"""

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Patch:
    target: str  # the internal reached into
    where: str  # GoChat's module that does it
    distribution: str  # the PyPI name whose version is pinned
    written_against: str
    why: str
    proven_by: str  # test file::test function
    upstream: str | None = None  # an issue or PR that would make it unnecessary


PATCHES: tuple[Patch, ...] = (
    Patch(
        target="twisted.internet.tcp.Connection.write",
        where="gochat_project.patches.twisted_writes",
        distribution="Twisted", written_against="26.10.0",
        why="Writes to an idle socket leave once per event-loop turn without registering a writer: "
            "about a fifth of the gateway's CPU under load (docs/benchmarks.md). Off with GOCHAT_EAGER_WRITES=0.",
        proven_by="tests/unit/test_twisted_writes.py::test_a_turn_s_writes_leave_together_at_its_end_without_a_writer",
    ),
    Patch(
        target="daphne.http_protocol.WebRequest.__init__",
        where="gochat_project.patches.daphne_forms",
        distribution="daphne", written_against="4.2.3",
        why="Twisted parses every multipart body into request.args, which Daphne never reads: uploads were "
            "held twice in memory, and an unparsable body got a bare 400 before GoChat saw it.",
        proven_by="tests/uploads/test_uploads.py::test_empty_or_missing_file_is_400",
        upstream="Daphne's request factory cannot pass Twisted's parsePOSTFormSubmission switch",
    ),
    Patch(
        target="autobahn WebSocketServerProtocol.serverClose (as Daphne's WebSocketProtocol)",
        where="gochat_project.patches.autobahn_close",
        distribution="autobahn", written_against="26.11.1",
        why="PROTOCOL.md promises close code 1012 (service restart) on shutdown; autobahn's sendClose admits "
            "only 1000 and 3000-4999 from applications, so that one frame is sent with its lower-level call.",
        proven_by="tests/messaging/test_faults.py::test_gateway_restart_clients_reconnect_and_sync",
    ),
    Patch(
        target="kombu.transport.confluentkafka Channel._get/_put/_get_consumer and QoS._not_yet_acked",
        where="gochat_project.infra.kombu_kafka",
        distribution="kombu", written_against="5.7.0",
        why="kombu commits an offset per task ack and flushes the producer in every publish; GoChat commits "
            "acked positions once per interval and lets logic flush a batch's publishes once.",
        proven_by="tests/messaging/test_celery_commits.py::test_acks_wait_for_the_interval_and_the_close_commits_them",
    ),
    Patch(
        target="drf_spectacular.openapi.AutoSchema._get_response_bodies and its private helpers",
        where="gochat_project.api.schema",
        distribution="drf-spectacular", written_against="0.30.0",
        why="Every operation documents the error statuses docs/protocol.md promises (400/401/403/404/413/429), "
            "which drf-spectacular has no public hook to add for all views at once.",
        proven_by="tests/security/test_api_schema.py::test_api_conforms_to_its_schema",
    ),
)


def install_gateway() -> None:
    """The gateway process (gochat_project.asgi). Under uvicorn none of these apply."""
    if "daphne.server" not in sys.modules:
        return
    from gochat_project.patches import autobahn_close, daphne_forms, twisted_writes

    daphne_forms.install()
    autobahn_close.install()
    if os.environ.get("GOCHAT_EAGER_WRITES", "1") != "0":
        twisted_writes.install()
