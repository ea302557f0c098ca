"""The signaling settings, written once as traitlets: the Jupyter extension (``NbChatApp``)
and the standalone service (``SignalingApp``) both inherit them."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, validate

from ..core.frames import MAX_MESSAGE_BYTES
from .ice import IceSettings
from .realm import Limits


class SignalingSettings(IceSettings):
    """Every knob of the signaling service, with its one default and its help."""

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
        60.0,
        config=True,
        help="Seconds without any frame (peers send HEARTBEAT every ping_interval) "
        "before a peer is evicted and announced as disconnected.",
    )
    ping_interval = Float(5.0, config=True, help="Seconds between client HEARTBEATs (advertised).")
    repair_interval = Float(
        15.0,
        config=True,
        help="Seconds between a peer's repair rounds (advertised): every open link is asked "
        "what it lacks again, so a message lost to a broken link still arrives. Shorter "
        "repairs sooner and costs each link a sync frame that often.",
    )
    expire_timeout = Float(
        5.0,
        config=True,
        help="Seconds a frame for a not-yet-connected id is queued before the sender gets EXPIRE.",
    )
    concurrent_limit = Int(5000, config=True, help="Most signaling connections at once.")
    max_message_bytes = Int(
        MAX_MESSAGE_BYTES,
        config=True,
        help="Largest chat message text (UTF-8 bytes) peers accept, and largest signaling "
        "frame accepted; larger ones get an ERROR.",
    )
    max_connections_per_user = Int(64, config=True, help="Most signaling connections per user.")
    max_rooms_per_user = Int(64, config=True, help="Most rooms one user is in at once.")
    rate_limit = Float(200.0, config=True, help="Sustained frames per second per socket.")
    rate_burst = Float(400.0, config=True, help="Frames a socket may send in a burst.")
    max_queued_per_peer = Int(
        256, config=True, help="Most frames queued for one not-yet-connected id."
    )
    id_reservation_timeout = Float(
        600.0,
        config=True,
        help="Seconds an id stays bound to its user after it was issued or last used, "
        "so a reconnect can reclaim it and nobody else can take it.",
    )
    allow_discovery = Bool(
        True, config=True, help="Serve GET nbchat/{key}/peers (ids connected in that room)."
    )
    lean_websocket = Bool(
        True,
        config=True,
        help="After the auth check and the handshake, serve signaling and presence "
        "sockets on nbchat's own lean WebSocket code instead of keeping a tornado "
        "handler per socket (about 4x less CPU per relayed frame and a fraction of the "
        "memory per socket, see docs/benchmarks.md). False uses tornado's stock "
        "WebSocket protocol.",
    )
    auth_cache_seconds = Float(
        30.0,
        config=True,
        help="Jupyter extension: for this many seconds after Jupyter's auth accepted a "
        "signaling or presence socket, a new socket presenting exactly the same "
        "credentials (Host, Origin, Cookie and Authorization headers) gets the same "
        "identity without a second pass through Jupyter's request path (a reconnect "
        "storm costs a fraction of the CPU, docs/benchmarks.md). Cleared when the "
        "server's token or password changes. 0 turns it off.",
    )
    listen_backlog = Int(
        1024,
        config=True,
        help="Jupyter extension, with auth_cache_seconds: the listen backlog of Jupyter's "
        "HTTP sockets, raised from tornado's 128 (capped by the kernel's somaxconn) so "
        "that in a reconnect storm the kernel queues the connections instead of dropping "
        "them (each dropped one waits 1 s or more for its retry). 0 leaves it alone.",
    )
    send_buffer_limit = Int(
        4 * 1024 * 1024,
        config=True,
        help="Bytes that may wait to be sent to a socket that is not reading; beyond "
        "that the socket is dropped (a stuck client must not grow the server's memory).",
    )
    tick_interval = Float(
        0.5, config=True, help="Seconds between checks for expired frames and silent peers."
    )
    signing_key_file = Unicode(
        "",
        config=True,
        help="File of the Ed25519 key that signs peers' certificates (their public key "
        "bound to their Jupyter identity, so everyone can check who wrote a message). "
        "Made with mode 0600 on first use; empty means nbchat/signing-key.pem in Jupyter's "
        "data directory. Processes that share rooms must share this file.",
    )
    room_groups: Dict[str, list[str]] = Dict(
        {},
        config=True,
        help=(
            "Rooms reserved to JupyterHub groups: room-name prefix -> the groups whose "
            "members may join, e.g. {'data-team/': ['data-team']} reserves every room "
            "whose name starts with 'data-team/'. Others are refused with a clear error. "
            "Only meaningful where users have groups (the JupyterHub service)."
        ),
    )
    broker = Unicode(
        "",
        config=True,
        help=(
            "Share rooms with other nbchat processes through Redis: redis://HOST:PORT/DB, "
            "rediss://… (TLS) or unix:///path/to/redis.sock. Every process pointed at the "
            "same Redis serves the same rooms (ids, presence, relays, queued frames), so "
            "several instances can run behind one load balancer. Empty (the default): "
            "this process is the whole server, nothing is shared."
        ),
    )
    audience = Unicode(
        "",
        config=True,
        help="Who can join a room, in words, shown in the chat's header (e.g. 'everyone "
        "signed in to this hub'). Empty: the service says it itself.",
    )

    @validate("repair_interval")
    def _repair_interval_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value >= 0.1:
            raise TraitError(f"repair_interval must be at least 0.1 seconds, not {value}")
        return value

    def limits(self) -> Limits:
        """What the realm enforces, from these settings."""
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
