"""ChatPeer: one Python participant in an nbchat room (full mesh, message log, presence)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiortc import RTCConfiguration

from ..core.chunking import payloads
from ..core.edits import MessageState, Timeline
from ..core.export import export_certs, from_json, to_json, to_markdown
from ..core.files import FILE_LIMIT_BYTES, FileMeta, clean_file_name
from ..core.frames import ChatFrameType, dumps
from ..core.mentions import TYPING_REFRESH_MS, TypingTracker, mentions
from ..core.mesh import DIAL_TIMEOUT_MS, MAX_LINKS, MESH_SIZE
from ..core.msglog import RECORD_KIND, Identity, Message, MessageLog
from ..core.ratelimit import IncomingLimits
from ..core.rich import RICH_LIMIT_BYTES, format_size, size_error
from ..core.signing import CertBook, entry_digest, generate_key, on_wire, public_key, sign_entry
from ..core.sync import (
    ANTI_ENTROPY_MS,
    Added,
    Confirmed,
    Invalid,
    Output,
    Rejected,
    RepairRound,
    RoomSync,
    TooBig,
)
from ..mimebundle import rich_message
from ..protocol import FrameType, Presence
from .dataconnection import DataConnection, new_chunk_id
from .errors import NbChatError, NotAnNbchatServer, SignalingError, TurnError
from .files import PeerFiles, ReceivedFile
from .ice import LoopbackCandidate, rtc_configuration
from .mesh import Mesh
from .presence import PresenceClient, PresenceEvent
from .sealed import Rejection, Sealer, SealError, open_frame, seal_payload
from .session import ServerSession, SessionConfig
from .signaling import SignalingClient
from .turncheck import check_turn

__all__ = ["ChatPeer"]

log = logging.getLogger(__name__)

ACK_POLL_INTERVAL = 0.01
#: A sync answer's later batches go while the link holds less than this many bytes.
HISTORY_HIGH_WATER = 64 * 1024
#: How often a paused answer looks whether its link drained.
HISTORY_POLL_S = 0.005
_CLOSED = object()


class ChatPeer:
    """Join a room, talk, listen::

        async with ChatPeer("http://127.0.0.1:8888/", "demo", token="…") as peer:
            await peer.send("hi")
            async for message in peer.messages():
                print(message["user"]["display_name"], message["text"])

    Up to ``mesh_size`` peers everyone links to everyone; of two peers the smaller id
    dials. In a bigger room each peer keeps at most ``max_links`` links (a bounded
    overlay, see :mod:`nbchat.core.mesh`) and forwards new messages along it. Every peer of a room
    must use the same two numbers (the defaults are the widget's). Each new connection
    starts with
    ``sync``/``history`` so every peer ends up with the same log.
    Room sync (:class:`nbchat.core.sync.RoomSync`) and the mesh policy are the widget's
    own rules from ``nbchat.core``; this class carries out what they decide.
    """

    def __init__(
        self,
        server_url: str,
        room: str,
        *,
        token: str | None = None,
        connect_timeout: float = DIAL_TIMEOUT_MS / 1000,
        identity_timeout: float = 10.0,
        rate_limit: bool = True,
        relay_only: bool = False,
        passphrase: str | None = None,
        max_rich_bytes: int = RICH_LIMIT_BYTES,
        receive_files: bool = True,
        max_file_bytes: int = FILE_LIMIT_BYTES,
        mesh_size: int = MESH_SIZE,
        max_links: int = MAX_LINKS,
        loopback_candidate: LoopbackCandidate = "auto",
    ) -> None:
        self.server_url = server_url
        #: The largest rich message ``send`` posts (bytes of its MIME bundle as JSON).
        self.max_rich_bytes = max_rich_bytes
        #: The largest file ``send_file`` shares and a shared file we fetch.
        self.max_file_bytes = max_file_bytes
        self.mesh_size = mesh_size
        self.max_links = max_links
        self.room = room
        self.token = token
        self.connect_timeout = connect_timeout
        self.identity_timeout = identity_timeout
        self.rate_limit = rate_limit
        #: Use only TURN-relayed ICE candidates (also forced by the server's policy).
        self.relay_only = relay_only
        #: When to offer a 127.0.0.1 ICE candidate (see peer.ice.add_loopback_host_candidates).
        self.loopback_candidate = loopback_candidate
        # Only the derived key is kept; the passphrase itself is dropped after join().
        self._passphrase = passphrase or None
        self._sealer: Sealer | None = None
        #: Signaling we refused (another passphrase, none, or changed in transit), oldest first.
        self.rejected: list[Rejection] = []
        self.config: SessionConfig | None = None
        self._session: ServerSession | None = None
        self._signaling: SignalingClient | None = None
        self._presence: PresenceClient | None = None
        self._log: MessageLog | None = None
        self._mesh: Mesh | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._message_queues: list[tuple[asyncio.Queue[Any], bool, bool]] = []
        self._presence_queues: list[asyncio.Queue[Any]] = []
        self._sync: RoomSync | None = None
        self._sync_wake = asyncio.Event()  # the sync's next deadline may have moved
        self._pumping: set[str] = set()  # peers whose sync answer is being sent batch by batch
        self._sent_own: dict[str, int] = {}  # connection id → highest own seq sent on it
        self._changed = asyncio.Condition()
        self._closed = False
        # Files shared peer to peer: what we offer, and (with receive_files) every shared
        # file fetched from its author as its card arrives.
        self._files = PeerFiles(
            self._send_to,
            self._buffered_to,
            lambda peer: peer in self.peers,
            self._spawn,
            receive=receive_files,
            limit=max_file_bytes,
        )
        self._timeline = Timeline()
        self._writers: set[str] = set()  # usernames of everyone in the log, for mentions
        self._signing_key = generate_key()
        self._certs: CertBook | None = None
        #: Our last signed entry: author, seq and digest (the next one's ``prev``).
        self._chain: tuple[str, int, str] = ("", 0, "")
        self._certs_sent: dict[str, set[str]] = {}  # connection id → authors vouched for on it
        self._typing = TypingTracker()
        self._typing_sent: float = -TYPING_REFRESH_MS  # loop time (ms) of our last typing frame

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> ChatPeer:
        await self.join()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.leave()

    async def join(self) -> None:
        """Log in, take an id, open signaling and presence, and dial the roster."""
        self._session = ServerSession(self.server_url, self.token)
        try:
            self.config = config = await self._session.session_config(self.room)
            if self._passphrase is not None:
                # ~0.1 s of PBKDF2: off the loop, so other peers in this process keep going.
                self._sealer = await asyncio.to_thread(
                    Sealer.for_room, self._passphrase, config.key
                )
                self._passphrase = None
            rtc_config = await self._ice_configuration(config)
            peer_id = await self._session.reserve_id(config)
            if config.server_keys:
                # The server vouches for our key: every entry we write is signed with it.
                self._certs = CertBook(config.key, config.server_keys)
                own = public_key(self._signing_key)
                cert = await self._session.certificate(config, peer_id, own)
                if self._certs.learn([cert]) != [peer_id]:
                    raise NotAnNbchatServer("the server's certificate for our key does not verify")
            self._log = MessageLog(peer_id, config.user)
            self._start_sync()
            self._mesh = Mesh(
                peer_id,
                self.room,
                self._relay,
                rtc_config,
                roster=lambda: self._presence.roster if self._presence else {},
                on_frame=self._on_frame,
                on_open=self._on_connection_open,
                on_closed=self._on_connection_closed,
                spawn=self._spawn,
                open_timeout=self.connect_timeout,
                limits=IncomingLimits if self.rate_limit else lambda: None,
                max_message_bytes=config.max_message_bytes,
                wants_part=self._files.wants_part,
                mesh_size=self.mesh_size,
                max_links=self.max_links,
            )
            self._signaling = SignalingClient(
                self._session,
                config,
                peer_id,
                self._on_signal,
                on_reopen=self._on_reopen,
                on_fatal=self._on_signaling_lost,
            )
            await self._signaling.connect(self.connect_timeout)
            self._presence = PresenceClient(self._session, config, self._on_presence)
            await self._presence.connect(self.connect_timeout)
        except BaseException:
            await self.leave()
            raise
        self._mesh.dial_missing()  # the bigger ids present; the smaller ones dial us

    async def _ice_configuration(self, config: SessionConfig) -> RTCConfiguration:
        """The RTCConfiguration for every connection, its TURN relay checked first: with
        relay-only ICE a relay that refuses us means no connection can ever open."""
        relay_only = self.relay_only or config.ice_transport_policy == "relay"
        rtc_config = rtc_configuration(
            config.ice_servers, relay_only=relay_only, loopback_candidate=self.loopback_candidate
        )
        try:
            if not await check_turn(rtc_config) and relay_only:
                raise TurnError(
                    "relay-only ICE needs a TURN relay, and the server configures none "
                    "(NbChatApp.turn_urls and turn_secret)"
                )
        except TurnError as error:
            if relay_only:
                raise
            # Direct paths may still work; say why relayed ones will not.
            log.warning("nbchat: %s; only direct connections will work in %s", error, self.room)
        return rtc_config

    async def leave(self) -> None:
        """Close every connection and socket; iterators from ``messages()`` end."""
        if self._closed:
            return
        self._closed = True
        # Signaling first: the server announces our departure before our data channels
        # close, so the others do not mistake it for a broken link and dial again.
        if self._signaling is not None:
            await self._signaling.close()
        if self._mesh is not None:
            await self._mesh.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._presence is not None:
            await self._presence.close()
        if self._session is not None:
            await self._session.close()
        for queue, _, _ in self._message_queues:
            queue.put_nowait(_CLOSED)
        for pqueue in self._presence_queues:
            pqueue.put_nowait(_CLOSED)
        async with self._changed:
            self._changed.notify_all()

    # --- public state --------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._require_log().peer_id

    @property
    def user(self) -> Identity:
        return self._require_log().user

    @property
    def users(self) -> list[Presence]:
        """Everyone in the room now (ourselves included), as the server reports them."""
        return list(self._presence.roster.values()) if self._presence else []

    @property
    def protected(self) -> bool:
        """Whether this peer seals its signaling with a room passphrase."""
        return self._sealer is not None or self._passphrase is not None

    @property
    def peers(self) -> set[str]:
        """Peer ids we have an open data connection to."""
        return self._mesh.peers if self._mesh is not None else set()

    @property
    def history(self) -> list[Message]:
        """Every log entry in the room's agreed order: messages, and the edits, deletes and
        reactions applied to them (``kind`` set). ``conversation`` folds them."""
        return self._require_log().messages

    @property
    def conversation(self) -> list[MessageState]:
        """Each message as the chat shows it now: latest text, edited, deleted, reactions."""
        shown = (self._timeline.state(m["id"]) for m in self._require_log().messages)
        return [state for state in shown if state is not None]

    def message(self, message_id: str) -> MessageState:
        """What message ``message_id`` shows now; KeyError if the room has no such message."""
        state = self._timeline.state(message_id)
        if state is None:
            raise KeyError(f"no message {message_id!r} in room {self.room!r}")
        return state

    def mentions(self, message: Message | MessageState) -> list[str]:
        """The usernames a message calls with ``@name``, among those in the room or who wrote."""
        known = {p["user"]["username"] for p in self.users} | self._writers
        known.add(self.user["username"])
        return mentions(message["text"], known)

    def mentions_me(self, message: Message | MessageState) -> bool:
        """Whether a message calls this peer's user: how a bot knows it is asked."""
        return self.user["username"] in self.mentions(message)

    @property
    def typing(self) -> list[str]:
        """Display names of the others typing now."""
        return self._typing.names(self._now())

    def _require_log(self) -> MessageLog:
        if self._log is None:
            raise NbChatError("not joined: use 'async with ChatPeer(...)' or await join()")
        return self._log

    # --- sending -------------------------------------------------------------------------

    async def send(self, content: object) -> Message:
        """Add a message to the log and send it to every connected peer.

        ``content`` is Markdown text, or anything Jupyter can display: a DataFrame goes as
        a table, a matplotlib figure or PIL image as an image (``nbchat.mimebundle``), with
        its text/plain as the fallback ``text``; the message's ``mime`` holds the bundle.
        Raises RichMessageTooBig over ``max_rich_bytes``.
        """
        if self._closed:
            raise NbChatError("this peer has left the room")
        text, mime = rich_message(content, self.max_rich_bytes)
        if not text.strip() and mime is not None:
            text = f"[{next(iter(mime))}]"
        return self._publish(text, mime)

    async def reply(self, message_id: str, text: str) -> Message:
        """Answer message ``message_id``: a message that quotes it."""
        self.message(message_id)
        return self._publish(text, reply_to=message_id)

    async def edit(self, message_id: str, text: str) -> Message:
        """Change the text of one of our user's messages, for everyone."""
        self._own(message_id, "edit")
        return self._publish(text, kind="edit", target=message_id)

    async def delete(self, message_id: str) -> Message:
        """Take back one of our user's messages, for everyone."""
        self._own(message_id, "delete")
        return self._publish("", kind="delete", target=message_id)

    async def react(self, message_id: str, emoji: str, on: bool = True) -> Message:
        """Set (or with ``on=False`` take back) our reaction ``emoji`` on a message."""
        self.message(message_id)
        return self._publish("", kind="react", target=message_id, emoji=emoji, on=on)

    async def off_the_record(self, off: bool = True) -> Message | None:
        """Take the room off the record (``off=False``: put it back on), for everyone in it;
        anyone in the room may. A signed switch entry every peer replicates; None if the
        room already is so. While it is off, what is said is shown but kept nowhere: no
        browser stores it, no kernel copy mirrors it, no export holds it."""
        if self.is_off_the_record == off:
            return None
        return self._publish("", kind=RECORD_KIND, on=not off)

    @property
    def is_off_the_record(self) -> bool:
        """Whether the room is off the record now (its latest switch in log order)."""
        record = self._timeline.record()
        return record is not None and record.get("on") is False

    def off_record(self, message_id: str) -> bool:
        """Whether entry ``message_id`` was said off the record (kept nowhere)."""
        return self._timeline.off_record(message_id)

    async def set_typing(self, on: bool = True) -> None:
        """Tell the others we are typing (sent at most every 2 s) or that we stopped."""
        now = self._now()
        if on and now - self._typing_sent < TYPING_REFRESH_MS:
            return
        self._typing_sent = now if on else -TYPING_REFRESH_MS
        for connection in self._open_connections():
            connection.send({"type": ChatFrameType.TYPING.value, "on": on})

    def export(self, path: str | Path) -> Path:
        """Write the room's history to ``path``: Markdown for ``.md``, else JSON that
        :meth:`import_history` (and the widget) can load again."""
        target = Path(path)
        now = time.time() * 1000
        # What was said off the record is never exported.
        if target.suffix.lower() == ".md":
            kept = [m for m in self.conversation if not self.off_record(m["id"])]
            text = to_markdown(self.room, kept, now)
        else:
            entries = [m for m in self._require_log().messages if not self.off_record(m["id"])]
            certs = None
            if self._certs is not None:  # so an importer can check the signatures
                certs = self._certs.certs_for(m["author"] for m in entries)
            text = dumps(to_json(self.room, entries, now, certs))
        target.write_text(text, encoding="utf-8")
        return target

    def import_history(self, path: str | Path) -> int:
        """Load an exported JSON history into this peer's log; returns how many entries
        were new. Each is checked as one from a peer is: in a signed room the file's
        certificates count only if the server's keys verify them, and an entry only if its
        author's certificate verifies its signature (others are dropped and logged), with
        the certified identity; then the log's history rules (docs/protocol.md §4).
        Peers that lack them get them by history sync as usual."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        room, entries = from_json(document)
        if room != self.room:
            raise ValueError(f"{path} is an export of room {room!r}, not {self.room!r}")
        held = self._require_log()
        if self._sync is None:
            raise NbChatError("not in the room yet: join first")
        fresh = [
            m
            for m in entries
            if not (isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"] in held)
        ]
        book = self._certs
        if book is not None:
            book.learn(export_certs(document))
            records = [m for m in fresh if isinstance(m, dict)]
            users = book.verify_all(records)
            checked = [
                {**m, "user": u} for m, u in zip(records, users, strict=True) if u is not None
            ]
            if len(checked) < len(fresh):
                log.warning(
                    "nbchat room %s: %d entries of %s left out: signature not verified",
                    self.room,
                    len(fresh) - len(checked),
                    path,
                )
            fresh = checked
        out = self._sync.import_history(fresh)
        added = [m for event in out.events if isinstance(event, Added) for m in event.messages]
        self._carry(out)
        return len(added)

    def _own(self, message_id: str, action: str) -> None:
        if self.message(message_id)["user"]["username"] != self.user["username"]:
            raise NbChatError(f"you can only {action} your own messages")

    def _publish(
        self,
        text: str,
        mime: dict[str, str] | None = None,
        file: FileMeta | None = None,
        **extensions: Any,
    ) -> Message:
        if self._closed:
            raise NbChatError("this peer has left the room")
        size = len(text.encode("utf-8"))
        if self.config is not None and size > self.config.max_message_bytes:
            raise ValueError(
                f"message of {size} bytes is over the room's limit of "
                f"{self.config.max_message_bytes} bytes"
            )
        now = int(time.time() * 1000)
        # Flagged (and so signed) off the record: a message while the room is, an amendment
        # of a message that is.
        if extensions.get("kind") is None:
            off = self.is_off_the_record
        else:
            target = extensions.get("target")
            off = isinstance(target, str) and self._timeline.off_record(target)
        if off:
            extensions["off_record"] = True
        message = self._require_log().compose(text, now, mime, file, **extensions)
        if self._certs is not None:
            # The hash chain (core/signing.py): our previous entry's digest, when it is seq - 1.
            author, seq, digest = self._chain
            if digest and author == message["author"] and seq == message["seq"] - 1:
                message["prev"] = digest
            message["sig"] = sign_entry(self._signing_key, self._certs.room, message)
            self._chain = (
                message["author"],
                message["seq"],
                entry_digest(self._certs.room, message) or "",
            )
        self._timeline.add(message)
        self._writers.add(message["user"]["username"])
        self._typing_sent = -TYPING_REFRESH_MS
        if self._sync is not None:
            self._carry(self._sync.publish(message))
        return message

    async def send_file(self, path: str | os.PathLike[str], name: str | None = None) -> Message:
        """Share the file at ``path``: a card in the room (name, size, type, SHA-256) and its
        bytes sent peer to peer to every peer that asks, while this peer is in the room.
        Raises ValueError over ``max_file_bytes``."""
        if self._closed:
            raise NbChatError("this peer has left the room")
        size = os.path.getsize(path)
        label = clean_file_name(name if name is not None else os.path.basename(os.fspath(path)))
        if size > self.max_file_bytes:
            raise ValueError(size_error(f"“{label}”", size, self.max_file_bytes))
        data = await asyncio.to_thread(_read_bytes, path)
        kind = mimetypes.guess_type(label)[0] or "application/octet-stream"
        meta = FileMeta(
            name=label, size=len(data), type=kind, sha256=hashlib.sha256(data).hexdigest()
        )
        text = f"📎 {label} ({format_size(len(data))})"
        message = self._publish(text, file=meta)
        self._files.offer(message["id"], data)
        return message

    def stop_sharing(self, message: Message) -> None:
        """Stop sending the file of our card ``message`` (transfers in progress stop)."""
        self._files.stop_offering(message["id"])

    @property
    def files(self) -> dict[str, ReceivedFile]:
        """Files others shared that arrived whole and checked, by their card's message id."""
        return dict(self._files.received)

    async def wait_file(self, message_id: str, timeout: float = 30.0) -> ReceivedFile:
        """The file of the card ``message_id``, once it has arrived (fetched automatically
        unless ``receive_files=False``); TimeoutError, or ValueError if it failed."""
        return await self._files.wait(message_id, timeout)

    def _send_to(self, peer: str, frame: dict[str, Any]) -> bool:
        connection = self._mesh.connection_to(peer) if self._mesh is not None else None
        return connection is not None and connection.send(frame)

    def _buffered_to(self, peer: str) -> int:
        connection = self._mesh.connection_to(peer) if self._mesh is not None else None
        return connection.buffered_amount if connection is not None else 0

    def delivered_to(self, message: Message) -> set[str]:
        """Peers known to hold our ``message``.

        A peer holds it if its ``sync`` said so, or if a connection to it carried the
        message and the peer's SCTP stack has acknowledged everything sent on it
        (reliable, ordered channel). The second needs nothing from the other side's
        application, so it works with every peer, browser or Python.
        """
        seq = message["seq"]
        confirmed = self._sync.confirmed if self._sync is not None else {}
        peers = {p for p, held in confirmed.items() if held >= seq}
        for connection in self._open_connections():
            if (
                self._sent_own.get(connection.connection_id, 0) >= seq
                and connection.all_acknowledged()
            ):
                peers.add(connection.peer)
        return peers

    async def wait_delivered(self, message: Message, peers: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``peers`` peers hold our ``message`` (see delivered_to); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.delivered_to(message)) < peers:
            if loop.time() >= deadline or self._closed:
                return False
            # SCTP acknowledgements raise no event; look again shortly.
            await asyncio.sleep(ACK_POLL_INTERVAL)
        return True

    async def wait_for_peers(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until we have open connections to ``count`` distinct peers."""
        return await self._wait_until(lambda: len(self.peers) >= count, timeout)

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate() or self._closed)

        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return predicate()

    # --- iterators -----------------------------------------------------------------------

    async def messages(
        self, include_own: bool = False, amendments: bool = False
    ) -> AsyncIterator[Message]:
        """Messages as they are added to the log from now on (direct or from history);
        with ``amendments``, edits, deletes and reactions too (``kind`` set).

        An id may come twice: when its author's own copy replaces a different relayed
        copy (a forgery), the author's copy is yielded too.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()
        entry = (queue, include_own, amendments)
        self._message_queues.append(entry)
        try:
            while not self._closed or not queue.empty():
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item
        finally:
            self._message_queues.remove(entry)

    async def presence(self) -> AsyncIterator[PresenceEvent]:
        """USER_CONNECTED / USER_DISCONNECTED events from now on."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._presence_queues.append(queue)
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item
        finally:
            self._presence_queues.remove(queue)

    # --- internals -----------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "nbchat room %s peer %s: task %s failed",
                self.room,
                self._log.peer_id if self._log else "?",
                task.get_name(),
                exc_info=task.exception(),
            )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _emit(self, messages: list[Message]) -> None:
        own = self._log.peer_id if self._log else None
        for message in messages:
            self._timeline.add(message)
            self._writers.add(message["user"]["username"])
            self._typing.stopped(message["author"])
            amendment = message.get("kind") is not None
            for queue, include_own, amendments in self._message_queues:
                if (include_own or message["author"] != own) and (amendments or not amendment):
                    queue.put_nowait(message)

    def _open_connections(self) -> list[DataConnection]:
        return self._mesh.open_connections() if self._mesh is not None else []

    async def _relay(self, kind: FrameType, dst: str, payload: dict[str, Any]) -> None:
        if self._signaling is not None:
            sealed = seal_payload(self._sealer, kind.value, self.id, dst, payload)
            await self._signaling.relay(kind, dst, sealed)

    def _on_signal(self, frame: dict[str, Any]) -> None:
        mesh = self._mesh
        if mesh is None:
            return
        try:
            opened = open_frame(self._sealer, self.id, frame)
        except SealError as error:
            self._reject(str(frame.get("src")), str(frame.get("type")), str(error))
            return
        mesh.on_signal(opened)

    def _reject(self, peer_id: str, kind: str, reason: str) -> None:
        log.warning(
            "nbchat room %s: refused %s from peer %s: %s (a different room passphrase, "
            "or the signaling server changed it)",
            self.room,
            kind,
            peer_id,
            reason,
        )
        self.rejected.append(Rejection(peer_id, kind, reason))
        mesh = self._mesh
        if kind == FrameType.OFFER.value and mesh is not None:
            # Call back once, so the other side learns of the mismatch too (our sealed
            # offer fails there); a link that is already being dialed is left alone.
            mesh.dial_unless_linked(peer_id)
        self._spawn(self._notify(), "nbchat-notify")

    def _on_connection_open(self, connection: DataConnection) -> None:
        if self._sync is not None:
            self._carry(self._sync.on_link_open(connection.peer, self._now()), connection)
        self._files.on_link_open(connection.peer)
        self._spawn(self._notify(), "nbchat-notify")

    def _on_connection_closed(self, connection: DataConnection) -> None:
        self._sent_own.pop(connection.connection_id, None)
        self._certs_sent.pop(connection.connection_id, None)
        if self._sync is not None and connection.peer not in self.peers:
            self._carry(self._sync.on_link_closed(connection.peer))
        if connection.peer not in self.peers:
            self._files.on_link_closed(connection.peer)
        if not self._closed:
            self._spawn(self._notify(), "nbchat-notify")

    def _on_signaling_lost(self, error: SignalingError) -> None:
        # Existing data channels keep working; nobody new can reach us any more.
        log.error("nbchat room %s peer %s: signaling gave up: %s", self.room, self.id, error)

    def _on_reopen(self) -> None:
        # While our signaling socket was down the server announced us as gone, and the
        # others dropped their links to us; as on joining, we dial everyone again.
        log.info("nbchat room %s: signaling reconnected", self.room)
        self._spawn(self._dial_missing(), "nbchat-dial-missing")

    async def _dial_missing(self) -> None:
        presence, mesh = self._presence, self._mesh
        if presence is None or mesh is None:
            return
        # Our own USER_CONNECTED marks the moment the others know we are back.
        await self._wait_until(lambda: self.id in presence.roster, self.connect_timeout)
        mesh.dial_missing()

    # room sync ------------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time() * 1000

    def _start_sync(self) -> None:
        config = self.config
        self._sync = RoomSync(
            self._require_log(),
            config.max_message_bytes if config else None,
            self._now(),
            (config.repair_interval if config else None) or ANTI_ENTROPY_MS,
        )
        self._spawn(self._sync_clock(), "nbchat-sync-clock")

    async def _sync_clock(self) -> None:
        """Tick the room sync at its deadlines (waiting answers, repair rounds)."""
        sync = self._sync
        assert sync is not None
        # Not `while True`: on Python 3.11, cancelling a task inside asyncio.wait_for at the
        # moment its inner wait completes (leave() closes links, and _carry wakes us) is
        # swallowed, and leave() then waited on this task for ever.
        while not self._closed:
            self._sync_wake.clear()
            wait = max(0.0, (sync.next_deadline() - self._now()) / 1000)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._sync_wake.wait(), wait)
            self._carry(sync.tick(self._now()))

    async def _pump_history(self, peer: str) -> None:
        """Send the rest of ``peer``'s sync answer (newest first) as its link drains, so a
        live message never waits behind more than HISTORY_HIGH_WATER bytes of history."""
        try:
            while not self._closed:
                await asyncio.sleep(0)
                sync, mesh = self._sync, self._mesh
                if sync is None or mesh is None or peer not in sync.backlogged():
                    return
                connection = mesh.connection_to(peer)
                if connection is None or connection.buffered_amount >= HISTORY_HIGH_WATER:
                    await asyncio.sleep(HISTORY_POLL_S)
                    continue
                self._carry(sync.drain(peer), connection)
        finally:
            self._pumping.discard(peer)

    def _carry(self, out: Output, via: DataConnection | None = None) -> None:
        """Send what the room sync returned and act on its events. A frame for ``via``'s
        peer goes on ``via`` (the link it answers), others on the peer's current link."""
        own = self._require_log().peer_id
        for send in out.sends:
            connection = via if via is not None and via.peer == send.to else None
            if connection is None and self._mesh is not None:
                connection = self._mesh.connection_to(send.to)
            if connection is None:
                continue
            frame = send.frame
            if self._certs is not None and frame["type"] in ("message", "history"):
                frame = self._vouch(connection, _on_wire(frame))
            if not connection.send(frame):
                continue
            sent = [frame["message"]] if frame["type"] == "message" else frame.get("messages", [])
            seqs = [m["seq"] for m in sent if m["author"] == own]
            if seqs:
                cid = connection.connection_id
                self._sent_own[cid] = max(self._sent_own.get(cid, 0), *seqs)
        if self._sync is not None:
            for peer in self._sync.backlogged():
                if peer not in self._pumping:
                    self._pumping.add(peer)
                    self._spawn(self._pump_history(peer), "nbchat-history")
        for event in out.events:
            if isinstance(event, Added):
                self._emit(event.messages)
                self._files.on_messages(event.messages, own)
            elif isinstance(event, Confirmed):
                self._spawn(self._notify(), "nbchat-notify")
            elif isinstance(event, RepairRound):
                if self._mesh is not None:
                    self._mesh.repair()
            elif isinstance(event, Rejected):
                for reason in event.reasons:
                    log.info(
                        "nbchat room %s: dropped a history entry from %s: %s",
                        self.room,
                        event.peer,
                        reason,
                    )
            elif isinstance(event, TooBig):
                log.warning(
                    "nbchat room %s: dropped %d oversized messages from %s",
                    self.room,
                    event.count,
                    event.peer,
                )
            elif isinstance(event, Invalid):
                log.warning(
                    "nbchat room %s: bad %s from %s: %s",
                    self.room,
                    event.frame,
                    event.peer,
                    event.reason,
                )
        self._sync_wake.set()

    # presence -------------------------------------------------------------------------------

    def _on_presence(self, event: PresenceEvent) -> None:
        mesh = self._mesh
        if event.type == "USER_DISCONNECTED" and mesh is not None:
            peer_id = event.peer["peer_id"]
            # Left out of a fresh roster is not proof of leaving: after a server restart it
            # lists only those whose signaling is back so far. An open link (it outlived the
            # server) is kept; a dead one closes by itself (ICE consent) and is not redialed.
            if not (event.from_roster and peer_id in mesh.peers):
                mesh.drop(peer_id)
        if mesh is not None:
            # In a big room the overlay moves a few links whenever someone joins or leaves.
            mesh.on_roster_changed()
        for queue in self._presence_queues:
            queue.put_nowait(event)
        self._spawn(self._notify(), "nbchat-notify")

    async def _identity_of(self, peer_id: str) -> Identity | None:
        """The identity the server bound to ``peer_id`` (waits briefly for its presence)."""
        presence = self._presence
        if presence is None:
            return None
        await self._wait_until(lambda: peer_id in presence.roster, self.identity_timeout)
        found = presence.roster.get(peer_id)
        return found["user"] if found else None

    # chat frames ----------------------------------------------------------------------------

    def _vouch(self, connection: DataConnection, frame: dict[str, Any]) -> dict[str, Any]:
        """``frame`` carrying (``certs``) the certificates of its authors not yet sent on this
        link: the receiver checks each entry's signature against its author's. One frame,
        not a ``certs`` frame ahead of it: a packet and its acknowledgement fewer on every
        link an author's first entry crosses."""
        assert self._certs is not None
        entries = [frame["message"]] if frame["type"] == "message" else frame["messages"]
        sent = self._certs_sent.setdefault(connection.connection_id, set())
        certs = self._certs.certs_for(m["author"] for m in entries if m["author"] not in sent)
        if not certs:
            return frame
        sent.update(c["peer"] for c in certs)
        return {**frame, "certs": certs}

    def _verified(self, connection: DataConnection, frame: dict[str, Any]) -> dict[str, Any] | None:
        """``frame`` with only the entries whose author's certificate vouches for them, each
        carrying the certified identity; None if nothing is left. Unsigned or forged
        entries are dropped and counted (``CertBook.refused``)."""
        book = self._certs
        if book is None or frame.get("type") not in ("message", "history"):
            return frame
        if frame["type"] == "message":
            raw = frame.get("message")
            entries = [{**raw, "author": connection.peer}] if isinstance(raw, dict) else []
        else:
            raw_list = frame.get("messages")
            entries = (
                [m for m in raw_list if isinstance(m, dict)] if isinstance(raw_list, list) else []
            )
            held = self._sync.log if self._sync is not None else None
            if held is not None:  # a second parent's copy of a forwarded entry, say
                peer = connection.peer
                entries = [
                    m
                    for m in entries
                    if not held.settled(m.get("author"), m.get("seq"), m.get("author") == peer)
                ]
                if not entries:
                    return None
        users = book.verify_all(entries)
        kept = [{**m, "user": u} for m, u in zip(entries, users, strict=True) if u is not None]
        if len(kept) < len(entries):
            log.warning(
                "nbchat room %s: dropped %d unverifiable entries from %s",
                self.room,
                len(entries) - len(kept),
                connection.peer,
            )
        if not kept:
            return None
        if frame["type"] == "message":
            return {**frame, "message": kept[0]}
        return {**frame, "messages": kept}

    def _on_frame(self, connection: DataConnection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in (ChatFrameType.FILE_GET, ChatFrameType.FILE_PART, ChatFrameType.FILE_CANCEL):
            presence = self._presence
            if presence is not None and connection.peer in presence.roster:
                self._files.on_frame(connection.peer, frame)
            return
        if kind == ChatFrameType.CERTS:  # as peers from before certificates rode along sent them
            if self._certs is not None:
                self._certs.learn(frame["certs"])
            return
        if self._certs is not None and kind in (ChatFrameType.MESSAGE, ChatFrameType.HISTORY):
            certs = frame.get("certs")
            if isinstance(certs, list):
                self._certs.learn(certs)
        if kind == ChatFrameType.SYNC:
            # A peer that syncs may lack what we sent: the answer carries certificates again.
            self._certs_sent.pop(connection.connection_id, None)
        checked = self._verified(connection, frame)
        if checked is None:
            return
        frame = checked
        if kind == ChatFrameType.TYPING:
            presence = self._presence
            found = presence.roster.get(connection.peer) if presence is not None else None
            if found is not None:
                name = found["user"]["display_name"]
                self._typing.typing(connection.peer, name, self._now(), frame["on"])
                self._spawn(self._notify(), "nbchat-notify")
            return
        if kind not in (ChatFrameType.MESSAGE, ChatFrameType.HISTORY, ChatFrameType.SYNC):
            log.debug("nbchat: ignoring frame type %r from %s", kind, connection.peer)
            return
        presence = self._presence
        if presence is not None and connection.peer in presence.roster:
            self._on_chat_frame(connection, frame, presence.roster[connection.peer]["user"])
        elif kind == "sync":
            self._on_chat_frame(connection, frame, None)  # needs no identity
        else:
            self._spawn(self._on_chat_frame_later(connection, frame), "nbchat-frame")

    async def _on_chat_frame_later(self, connection: DataConnection, frame: dict[str, Any]) -> None:
        # Arrives only if a data channel outran the presence event (different sockets).
        # The wait is per frame, so a later frame could overtake; the log's order does not
        # depend on arrival order, so that is harmless.
        user = await self._identity_of(connection.peer)
        if user is None:
            log.warning(
                "nbchat room %s: dropping a frame from %s, which the server never announced",
                self.room,
                connection.peer,
            )
            return
        self._on_chat_frame(connection, frame, user)

    def _on_chat_frame(
        self, connection: DataConnection, frame: dict[str, Any], user: Identity | None
    ) -> None:
        if self._sync is not None:
            out = self._sync.on_frame(connection.peer, frame, user, self._now())
            self._carry(out, connection)
            messages = frame.get("messages")
            if frame["type"] == "message" or (isinstance(messages, list) and len(messages) == 1):
                self._forward(out, connection.peer)

    def _forward(self, out: Output, came_from: str) -> None:
        """In a big room, pass messages new to our log that arrived live (a ``message``, or
        a one-entry ``history`` another peer forwarded) on to our other links, as relayed
        copies; sync answers are not forwarded (the others sync with their own links)."""
        mesh = self._mesh
        if mesh is None:
            return
        for event in out.events:
            if not isinstance(event, Added):
                continue
            for message in event.messages:
                frame: dict[str, Any] = {"type": "history", "messages": [on_wire(message)]}
                # Written once per variant (with the author's certificate, or without).
                written: dict[bool, list[bytes]] = {}
                for connection in mesh.forward_to(message["author"], came_from):
                    sent = frame if self._certs is None else self._vouch(connection, frame)
                    parts = written.get(sent is frame)
                    if parts is None:
                        parts = written[sent is frame] = payloads(sent, new_chunk_id)
                    connection.send_payloads(parts)


def _on_wire(frame: dict[str, Any]) -> dict[str, Any]:
    """A ``message`` or ``history`` frame with its entries as they go on the wire."""
    if frame["type"] == "message":
        return {**frame, "message": on_wire(frame["message"])}
    return {**frame, "messages": [on_wire(m) for m in frame["messages"]]}


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as file:
        return file.read()
