"""A small threaded TCP listener: one thread accepts, one thread per client runs its handler.

Binds loopback only, unless told ``allow_remote`` (then it warns: the emulator has no
authentication). A client that breaks the protocol or overfills a buffer is dropped with one log line.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable

from rmskill.errors import ConfigError

log = logging.getLogger(__name__)

BACKLOG = socket.SOMAXCONN  # connections the kernel queues before accept()


class ClientDropped(Exception):
    """A handler gives up on its client (protocol error, a buffer over its cap); logged as one line."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``; warn when it is allowed."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(f"refusing to listen on '{host}': the emulator has no authentication, so it binds "
                          "loopback (127.0.0.x) only; pass --allow-remote to expose it on the network")
    log.warning("listening on %s: anyone who can reach this address can move the simulated arm "
                "(no authentication)", host)


class Listener:
    """Accepts clients on ``host:port`` and runs ``handler(sock)`` for each in its own thread."""

    def __init__(self, host: str, port: int, handler: Callable[[socket.socket], None], name: str,
                 allow_remote: bool = False):
        if not (allow_remote or is_loopback(host)):
            check_bind(host, allow_remote)  # raises
        self.host, self.port, self.handler, self.name = host, port, handler, name
        self._server: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and start accepting; raises ``OSError`` when the port is taken."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((self.host, self.port))
        except OSError:
            server.close()
            raise
        server.listen(BACKLOG)
        self.port = server.getsockname()[1]  # the port chosen by the OS when asked for port 0
        self._server = server
        self._thread = threading.Thread(target=self._accept, name=f"{self.name}-accept", daemon=True)
        self._thread.start()
        log.info("%s listening on %s:%d", self.name, self.host, self.port)

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                sock, addr = self._server.accept()
            except OSError:
                return  # listener closed
            log.debug("%s: client %s:%d", self.name, *addr)
            with self._lock:
                self._clients.add(sock)
            threading.Thread(target=self._run, args=(sock, addr), name=f"{self.name}-client", daemon=True).start()

    def _run(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        try:
            self.handler(sock)
        except ClientDropped as err:
            log.warning("%s: dropped client %s:%d: %s", self.name, *addr, err)
        except (ConnectionError, TimeoutError) as err:
            log.info("%s: client %s:%d went away (%s)", self.name, *addr, type(err).__name__)
        except Exception:  # a broken client must not take the server down
            log.exception("%s: client handler failed", self.name)
        finally:
            with self._lock:
                self._clients.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Stop accepting and cut every client off (they see the connection close)."""
        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=1.0)
