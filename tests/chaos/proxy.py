"""A userspace TCP fault proxy (this kernel has no ``tc netem``): latency and one-way loss.

One listening port per host, all in one asyncio loop on a thread of the
controller. ``latency`` delays every chunk in both directions (order kept);
``drop_answers`` swallows everything the server sends: the client's commit
lands but its answer never comes, and when the fault ends the affected
connections are reset, as a middlebox timing out would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    latency: float = 0.0
    drop_answers: bool = False
    #: Connections whose answers were swallowed (reset when the drop ends).
    victims: set[asyncio.StreamWriter] = field(default_factory=set)


def keepalive(writer: asyncio.StreamWriter) -> None:
    sock: socket.socket | None = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 15000)


class FaultProxy:
    """Ports ``listen_host:first_port + N`` forward to ``target`` with host N's faults."""

    def __init__(self, listen_host: str, first_port: int, target: tuple[str, int]) -> None:
        self.listen_host = listen_host
        self.first_port = first_port
        self.target = target
        self.faults: dict[int, Faults] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.base_events.Server] = []

    def port(self, host: int) -> int:
        return self.first_port + host

    def start(self, hosts: int) -> None:
        self.thread.start()
        for host in range(1, hosts + 1):
            self.faults[host] = Faults()
            server = asyncio.run_coroutine_threadsafe(self._serve(host), self.loop).result()
            self.servers.append(server)

    async def _serve(self, host: int) -> asyncio.base_events.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(host, reader, writer)

        return await asyncio.start_server(handle, self.listen_host, self.port(host))

    async def _connection(
        self, host: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        keepalive(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        faults = self.faults[host]
        await asyncio.gather(
            self._pump(reader, up_writer, faults, writer, answers=False),
            self._pump(up_reader, writer, faults, writer, answers=True),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()
        faults.victims.discard(writer)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        faults: Faults,
        client: asyncio.StreamWriter,
        *,
        answers: bool,
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if faults.latency:
                    await asyncio.sleep(faults.latency)
                if answers and faults.drop_answers:
                    faults.victims.add(client)
                    continue
                if client in faults.victims:
                    break  # a stream with a hole in it: drop the connection
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def set(self, host: int, *, latency: float | None = None, drop_answers: bool | None = None):
        def apply() -> None:
            faults = self.faults[host]
            if latency is not None:
                faults.latency = latency
            if drop_answers is not None:
                faults.drop_answers = drop_answers
                if not drop_answers:
                    for victim in list(faults.victims):
                        transport = victim.transport
                        with contextlib.suppress(Exception):
                            sock = transport.get_extra_info("socket")
                            if sock is not None:  # RST, not FIN
                                sock.setsockopt(
                                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0"
                                )
                            transport.abort()
                    faults.victims.clear()

        self.loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        def close() -> None:
            for server in self.servers:
                server.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_later(0.2, self.loop.stop)

        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(close)
            self.thread.join(5)
