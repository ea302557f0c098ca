"""A TCP load balancer for tests: each new connection goes to the next backend that
accepts it (round robin, no stickiness), like a Kubernetes Service in front of replicas."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading

from tests.support.lab import free_port


class Balancer:
    """Round-robin TCP proxy on 127.0.0.1:``port`` over ``backends`` (ports), in a thread."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.routed: list[int] = []  # which backend each connection went to
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def url(self, base: str) -> str:
        return f"http://127.0.0.1:{self.port}{base}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._server = server
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.backends)):
            port = self.backends[next(self._turn) % len(self.backends)]
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                self.routed.append(port)
                break
            except OSError:
                continue  # that replica is down: the next one
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
