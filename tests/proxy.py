"""A TCP proxy that a test can close: a server (Redis) that goes away in the middle of a run."""

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards connections on a free local port to the server of `url` until close(), which
    drops the listener and every connection at once."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []

    def url(self, url: str) -> str:
        """`url` with this proxy's address in place of the server's."""
        return urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{self.port}"))

    def __enter__(self) -> "TcpProxy":
        self._start(self._accept)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
        for thread in self.threads:
            thread.join()

    def close(self) -> None:
        self.closed.set()
        for connection in list(self.sockets):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            self._start(self._pipe, client, server)
            self._start(self._pipe, server, client)

    def _pipe(self, source: socket.socket, destination: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, destination):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
