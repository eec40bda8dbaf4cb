"""A loopback TCP proxy that can lose a COMMIT: the test stand-in for a network failure.

It forwards bytes between clients and one database server unchanged. Armed
with :meth:`CommitCuttingProxy.cut_next_commit`, the next client message
holding ``COMMIT`` is handled in one of two ways, and the connection is then
cut on both sides:

- ``landed=True``: the COMMIT goes to the server and the proxy waits for the
  server's answer, then drops it. The transaction is committed, but the
  client only sees a lost connection.
- ``landed=False``: the COMMIT never reaches the server, which rolls the
  transaction back when the connection closes. The client sees the same.

Only loopback addresses are used; every socket has a timeout and every
thread is a daemon joined on :meth:`close`, so a test cannot hang on it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

#: How the COMMIT statement appears on the wire (PostgreSQL's query/parse
#: messages end the text with NUL; MySQL's COM_QUERY is byte 3 then the text).
COMMIT_MARKERS = (b"COMMIT\x00", b"\x03COMMIT")
TIMEOUT = 5.0


class CommitCuttingProxy:
    """Forward 127.0.0.1:<port> to a database server; lose COMMITs on request."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the proxy only forwards to a loopback address")
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.cuts = 0
        self.commits_seen = 0
        self._armed: bool | None = None  # None: not armed; else whether the COMMIT lands
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def cut_next_commit(self, *, landed: bool) -> None:
        """Lose the next COMMIT: after the server did it (``landed``) or before it got it."""
        with self._lock:
            self._armed = landed

    def _take_arming(self) -> bool | None:
        with self._lock:
            armed, self._armed = self._armed, None
            return armed

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._pump, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=TIMEOUT)
        except OSError:
            client.close()
            return
        client.settimeout(TIMEOUT)
        with selectors.DefaultSelector() as selector, client, server:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    destination: socket.socket = key.data
                    try:
                        data = source.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if source is client and any(m in data for m in COMMIT_MARKERS):
                        with self._lock:
                            self.commits_seen += 1
                        armed = self._take_arming()
                        if armed is not None:
                            self._cut(server, data, landed=armed)
                            return
                    try:
                        destination.sendall(data)
                    except OSError:
                        return

    def _cut(self, server: socket.socket, commit: bytes, *, landed: bool) -> None:
        """Lose one COMMIT; the caller closes both sockets."""
        if landed:
            server.sendall(commit)
            server.settimeout(TIMEOUT)
            server.recv(65536)  # the server's answer: it committed; the client never hears
        with self._lock:
            self.cuts += 1

    def close(self) -> None:
        """Stop accepting, end every connection and join the threads."""
        self._stopping.set()
        self._accepter.join(timeout=TIMEOUT)
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
        self.listener.close()

    def __enter__(self) -> CommitCuttingProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
