"""The extension app: settings as traitlets, the realm, and its clock."""

from __future__ import annotations

import contextvars
import time
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Float, Int, List

from .handlers import deliver, make_handlers
from .ice import IceSettings
from .realm import Limits, Realm
from .wsconn import Hub


class NbChatApp(IceSettings, ExtensionApp):
    """Signaling and presence for nbchat rooms, behind Jupyter's auth."""

    name = "nbchat"
    load_other_extensions = True

    ice_servers: List[dict[str, Any]] = List(
        [],
        config=True,
        help=(
            "ICE servers (RTCIceServer dicts: urls, username, credential) handed to every "
            "peer. Empty by default: no public STUN/TURN server is ever contacted unless "
            "you configure one here."
        ),
    )
    alive_timeout = Float(
        60.0, config=True,
        help="Seconds without any frame (peers send HEARTBEAT every ping_interval) "
        "before a peer is evicted and announced as disconnected.",
    )
    ping_interval = Float(5.0, config=True, help="Seconds between client HEARTBEATs (advertised).")
    expire_timeout = Float(
        5.0, config=True,
        help="Seconds a frame for a not-yet-connected id is queued before the sender gets EXPIRE.",
    )
    concurrent_limit = Int(5000, config=True, help="Most signaling connections at once.")
    max_message_bytes = Int(
        65536, config=True, help="Largest signaling frame accepted; larger ones get an ERROR."
    )
    max_connections_per_user = Int(64, config=True, help="Most signaling connections per user.")
    max_rooms_per_user = Int(64, config=True, help="Most rooms one user is in at once.")
    rate_limit = Float(200.0, config=True, help="Sustained frames per second per socket.")
    rate_burst = Float(400.0, config=True, help="Frames a socket may send in a burst.")
    max_queued_per_peer = Int(
        256, config=True, help="Most frames queued for one not-yet-connected id."
    )
    id_reservation_timeout = Float(
        600.0, config=True,
        help="Seconds an id stays bound to its user after it was issued or last used, "
        "so a reconnect can reclaim it and nobody else can take it.",
    )
    allow_discovery = Bool(
        True, config=True, help="Serve GET nbchat/{key}/peers (ids connected in that room)."
    )
    lean_websocket = Bool(
        True, config=True,
        help="After Jupyter's auth and the handshake, serve signaling and presence "
        "sockets on nbchat's own lean WebSocket code instead of keeping a tornado "
        "handler per socket (about 4x less CPU per relayed frame and a fraction of the "
        "memory per socket, see docs/benchmarks.md). False uses tornado's stock "
        "WebSocket protocol.",
    )
    send_buffer_limit = Int(
        4 * 1024 * 1024, config=True,
        help="Bytes that may wait to be sent to a socket that is not reading; beyond "
        "that the socket is dropped (a stuck client must not grow the server's memory).",
    )
    tick_interval = Float(
        0.5, config=True, help="Seconds between checks for expired frames and silent peers."
    )

    realm: Realm

    @property
    def max_frame_bytes(self) -> int:
        """Largest WebSocket message read at all. Frames up to 4x ``max_message_bytes``
        are read so that the sender gets a clear ERROR for an oversized frame; beyond
        that the socket is closed with 1009."""
        return self.max_message_bytes * 4

    def limits(self) -> Limits:
        return Limits(
            alive_timeout=self.alive_timeout,
            expire_timeout=self.expire_timeout,
            concurrent_limit=self.concurrent_limit,
            max_message_bytes=self.max_message_bytes,
            max_connections_per_user=self.max_connections_per_user,
            max_rooms_per_user=self.max_rooms_per_user,
            max_queued_per_peer=self.max_queued_per_peer,
            rate_limit=self.rate_limit,
            rate_burst=self.rate_burst,
            id_reservation_timeout=self.id_reservation_timeout,
        )

    def initialize_settings(self) -> None:
        self.realm = Realm(self.limits())
        self.hub = Hub(self.max_frame_bytes, self.send_buffer_limit)
        self.hub.app = self
        self._ticker = PeriodicCallback(self._tick, self.tick_interval * 1000)

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_handlers(self))

    def ensure_ticking(self) -> None:
        """Start the clock on first use, inside the running loop (handlers call this)."""
        if not self._ticker.is_running():
            # In an empty context: started from a request, the timer would otherwise
            # carry (and keep alive) that request's handler in Jupyter's CallContext.
            contextvars.Context().run(self._ticker.start)

    def _tick(self) -> None:
        now = time.monotonic()
        self.hub.sweep(now)
        deliveries, evict = self.realm.tick(now)
        deliver(deliveries)
        for client in evict:
            self.log.info(
                "nbchat: evicting silent peer %s in room %s", client.peer_id, client.key
            )
            client.transport.close(1001, "no heartbeat within alive_timeout")
            # The socket's on_close runs later; announce the departure now.
            deliver(self.realm.disconnect(client, client.transport, time.monotonic()))

    async def stop_extension(self) -> None:
        self._ticker.stop()
        self.hub.close_all()
