"""The channel layer waits out a Redis outage instead of killing the socket's
dispatch loop (which Channels turns into close code 1011). Against a real
redis-server on a port of its own, started only after the receive began."""

import asyncio
import socket
import subprocess
from collections.abc import Iterator

import pytest
from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from gochat_project.infra.channel_layer import ResilientRedisChannelLayer
from gochat_project.ops.services import port_open
from tests.stack import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_port() -> Iterator[int]:
    """A port where Redis is not running yet; `_start_redis` brings it up."""
    port = _free_port()
    yield port
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, check=False)


def _start_redis(port: int) -> None:
    subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: port_open(f"127.0.0.1:{port}"), 10, f"redis on {port}")


def _layer(cls: type[RedisChannelLayer], port: int) -> RedisChannelLayer:
    return cls(hosts=[{"address": f"redis://127.0.0.1:{port}/0", "socket_timeout": None}], prefix="t")


def test_plain_channels_redis_lets_the_outage_escape_receive(redis_port: int) -> None:
    """Why the subclass exists: the plain layer raises, which ends the consumer."""
    async def run() -> None:
        layer = _layer(RedisChannelLayer, redis_port)
        channel = await layer.new_channel()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(layer.receive(channel), 5)

    asyncio.run(run())


def test_receive_waits_for_redis_and_then_delivers(redis_port: int) -> None:
    async def run() -> dict[str, str]:
        layer = _layer(ResilientRedisChannelLayer, redis_port)
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(1.5)  # Redis is down all this time: several failed BRPOPs
        assert not receiving.done(), receiving.exception() if receiving.done() else None
        await asyncio.get_running_loop().run_in_executor(None, _start_redis, redis_port)
        await layer.send(channel, {"type": "control.kick", "reason": "after the outage"})
        message = await asyncio.wait_for(receiving, 10)
        await layer.flush()
        return message

    message = asyncio.run(run())
    assert message == {"type": "control.kick", "reason": "after the outage"}
