"""Running the app on uvicorn: one process, or N worker processes sharing one socket.

Ready means accepting: `listening on http://HOST:PORT` is printed only once every worker has
started (with --port 0 it names the port the system chose). SIGTERM or SIGINT: uvicorn stops
accepting, finishes the requests in flight, the app drains its writer, and the process
exits 0. Workers are forked from a parent that holds no database connection and no thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from ..session import open_session


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,  # ours (edge.py) names routes, never raw paths
        log_level="warning",
        timeout_graceful_shutdown=None,  # finish every request in flight
        server_header=False,
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[_Server], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    def handle_exit(self, sig: int, frame: Any) -> None:
        """Every SIGTERM or SIGINT means: stop accepting, finish what is in flight. A second
        one (Ctrl-C in a terminal reaches the workers and the parent forwards SIGTERM too)
        must not cut requests short, as uvicorn's own handler would."""
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready(self)


def _announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"listening on http://{shown}:{port}\n")
    sys.stdout.flush()


def _settle_memory() -> None:
    """Move everything built at start-up (modules, app, schema) out of the collector's way,
    and collect the young generation less often: a request allocates many small objects and
    frees them again; scanning them every 700 allocations cost ~10% of the event loop."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # the event loop and the writer thread hand the GIL back and forth around every SQLite
    # call; at the default 5 ms a request waited whole slices for its turn
    sys.setswitchinterval(0.0005)


def _calm_signals() -> None:
    """uvicorn re-raises the signal it caught once it has shut down gracefully; with these
    handlers in place that re-raise is a no-op and the process exits 0."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def run(db_path: str, host: str, port: int, workers: int = 1) -> int:
    open_session(db_path).close()  # a missing or old file is refused before binding
    sock = _bind(host, port)
    if workers == 1:
        return _run_one(db_path, host, sock)
    return _run_many(db_path, host, sock, workers)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one clear line (uvicorn would log and exit 1)."""
    try:
        return _config(None, host, port).bind_socket()
    except (SystemExit, TypeError, ValueError, UnicodeError):  # NUL, surrogates: no address
        from ..errors import invalid

        raise invalid(
            f"cannot listen on {host}:{port} (address in use, or not this machine's)",
            hint="choose another --port (0: any free one) or --host",
        ) from None


def _run_one(db_path: str, host: str, sock: socket.socket) -> int:
    from .app import create_app

    def ready(server: _Server) -> None:
        _announce(host, sock.getsockname()[1])

    server = _Server(_config(create_app(db_path), host, 0), ready)
    _settle_memory()
    _calm_signals()
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _run_many(db_path: str, host: str, sock: socket.socket, workers: int) -> int:
    bound_port = sock.getsockname()[1]
    ready_r, ready_w = os.pipe()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own app, writer and connections
            os.close(ready_r)
            code = 1
            try:
                code = _worker(db_path, sock, ready_w)
            finally:
                os._exit(code)
        children.append(pid)
    os.close(ready_w)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = 0
    while started < workers:
        try:
            chunk = os.read(ready_r, workers)
        except InterruptedError:
            continue
        if not chunk:
            break  # a worker died before it was ready
        started += len(chunk)
    os.close(ready_r)
    if started == workers and not stopping:
        _announce(host, bound_port)
    else:
        stop()
    worst = 0
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        worst = max(worst, 0 if os.waitstatus_to_exitcode(status) == 0 else 1)
    sock.close()
    return worst if stopping else 1


def _worker(db_path: str, sock: socket.socket, ready_w: int) -> int:
    from .app import create_app

    def ready(server: _Server) -> None:
        os.write(ready_w, b".")
        os.close(ready_w)

    server = _Server(_config(create_app(db_path), "", 0), ready)
    _settle_memory()
    _calm_signals()
    server.run(sockets=[sock])
    return 0 if server.started else 1
