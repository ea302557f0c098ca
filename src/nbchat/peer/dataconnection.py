"""A peerjs 1.5 compatible DataConnection over aiortc (json serialization, reliable)."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc.rtcpeerconnection
from aiortc import (
    RTCCertificate,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)

from ..core.chunking import ChunkAssembler, max_chunked_bytes, payloads
from ..core.frames import (
    MAX_MESSAGE_BYTES,
    ChatFrameType,
    InvalidFrame,
    decode,
    parse_chat_frame,
)
from ..core.ratelimit import IncomingLimits
from ..protocol import FrameType
from .ice import (
    LoopbackCandidate,
    add_loopback_host_candidates,
    check_consent_often,
    parse_candidate,
)

__all__ = ["DataConnection", "Signal"]

log = logging.getLogger(__name__)

#: Sends a signaling frame: (type, destination peer id, payload).
Signal = Callable[[FrameType, str, dict[str, Any]], Awaitable[None]]

SERIALIZATION = "json"


def new_connection_id() -> str:
    # peerjs: "dc_" + a random token.
    return "dc_" + secrets.token_hex(6)


def new_chunk_id() -> str:
    return "c-" + secrets.token_hex(8)


class _SharedCertificate(RTCCertificate):
    """A DTLS certificate for many connections, its fingerprints and TLS context made once.

    aiortc makes a key pair, a certificate, its fingerprints and an OpenSSL context for
    every RTCPeerConnection (~1 ms each, a good part of a link's set-up CPU when a mesh
    forms). Browsers let one certificate serve many connections (RTCConfiguration
    ``certificates``); aiortc 1.16 does not, so :func:`_certificate` hands this one to
    each new connection. The fingerprint in each SDP still pins the DTLS handshake.
    """

    @functools.cache  # noqa: B019 - a few live certificates per process, kept on purpose
    def getFingerprints(self) -> Any:  # noqa: N802 - aiortc's name
        return super().getFingerprints()

    @functools.cache  # noqa: B019
    def _cached_context(self, profiles: tuple[Any, ...]) -> Any:
        return super()._create_ssl_context(list(profiles))

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        return self._cached_context(tuple(srtp_profiles))


_shared: _SharedCertificate | None = None
#: A new certificate once the shared one is this close to expiring (aiortc's last 30 days).
CERTIFICATE_RENEW_BEFORE = datetime.timedelta(days=7)


def _certificate() -> _SharedCertificate:
    global _shared
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    if _shared is None or _shared.expires - now < CERTIFICATE_RENEW_BEFORE:
        _shared = _SharedCertificate.generateCertificate()
    return _shared


class _IssueShared:
    """Stands in for ``RTCCertificate`` in aiortc's RTCPeerConnection constructor, which
    otherwise makes a key pair and a certificate that :func:`_peer_connection` would throw
    away at once (~0.3 ms of a connection's set-up CPU)."""

    @staticmethod
    def generateCertificate() -> _SharedCertificate:  # noqa: N802 - aiortc's name
        return _certificate()


def _peer_connection(rtc_config: RTCConfiguration) -> RTCPeerConnection:
    """A new RTCPeerConnection with the process's shared DTLS certificate.

    aiortc 1.16 has no ``certificates`` option: its constructor calls
    ``RTCCertificate.generateCertificate()`` from its own module, so the name is swapped
    for the constructor's duration (synchronous: no other task runs meanwhile; a thread
    making its own connection at that instant would share the certificate too, which is
    still a valid one). The private attribute is set as well in case a later aiortc looks
    the class up another way."""
    module: Any = aiortc.rtcpeerconnection
    original = module.RTCCertificate
    module.RTCCertificate = _IssueShared
    try:
        pc = RTCPeerConnection(rtc_config)
    finally:
        module.RTCCertificate = original
    pc._RTCPeerConnection__certificates = [_certificate()]  # type: ignore[attr-defined]
    return pc


class DataConnection:
    """One WebRTC data channel to one remote peer, negotiated as peerjs does.

    ``limits`` rate-limits what the remote peer sends us (see core/ratelimit.py); frames over
    the limits are dropped with a warning now and then.

    The originator creates the channel (label = connection id, ``ordered`` = reliable)
    and sends OFFER ``{sdp, type: "data", connectionId, label, reliable, serialization,
    metadata}``; the other side answers. aiortc puts all its candidates in the SDP, so
    we send no CANDIDATE frames; a browser trickles its own, which we add as they come.
    """

    def __init__(
        self,
        peer: str,
        signal: Signal,
        rtc_config: RTCConfiguration,
        on_frame: Callable[[DataConnection, dict[str, Any]], None],
        *,
        connection_id: str | None = None,
        label: str | None = None,
        reliable: bool = True,
        metadata: Any = None,
        originator: bool = True,
        limits: IncomingLimits | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        wants_part: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.peer = peer
        # Parts of a file we asked this peer for skip the rate limit: the card bounds them,
        # and a file with dropped parts would stall.
        self._wants_part = wants_part
        self.connection_id = connection_id or new_connection_id()
        self.label = label or self.connection_id
        self.reliable = reliable
        self.metadata = metadata
        self.originator = originator
        self._signal = signal
        self._on_frame = on_frame
        self.pc = _peer_connection(rtc_config)
        self._loopback: LoopbackCandidate = getattr(rtc_config, "loopback_candidate", "auto")
        self.channel: RTCDataChannel | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._assembler = ChunkAssembler(max_chunked_bytes(max_message_bytes))
        self._limits = limits  # None: no rate limits (trusted peers, benchmarks)
        self._remote_set = False
        self._early_candidates: list[Any] = []
        self._close_callbacks: list[Callable[[DataConnection], None]] = []
        self._open_callbacks: list[Callable[[DataConnection], None]] = []
        self._closing: asyncio.Task[None] | None = None

        # Plain functions, not coroutines: pyee makes a task of every call of a coroutine
        # handler, and these run for every state a connection passes through.
        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                self._close_soon()

        @self.pc.on("datachannel")
        def _on_channel(channel: RTCDataChannel) -> None:
            self._attach(channel)

    def __repr__(self) -> str:
        return f"<DataConnection {self.connection_id} to {self.peer}>"

    @property
    def was_open(self) -> bool:
        """Whether the channel ever opened (it may have closed since)."""
        return self.opened.is_set()

    @property
    def open(self) -> bool:
        return self.opened.is_set() and not self.closed.is_set()

    def on_close(self, callback: Callable[[DataConnection], None]) -> None:
        self._close_callbacks.append(callback)

    def on_open(self, callback: Callable[[DataConnection], None]) -> None:
        """Call ``callback`` once, when the channel opens (soon after, not within aiortc's
        event)."""
        self._open_callbacks.append(callback)

    def _set_open(self) -> None:
        if self.opened.is_set():
            return
        self.opened.set()
        loop = asyncio.get_running_loop()
        for callback in self._open_callbacks:
            loop.call_soon(callback, self)

    def _attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel

        @channel.on("open")
        def _on_open() -> None:
            self._set_open()

        @channel.on("message")
        def _on_message(data: bytes | str) -> None:
            self._receive(data)

        @channel.on("close")
        def _on_close() -> None:
            self._close_soon()

        if channel.readyState == "open":
            self._set_open()

    def _close_soon(self) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.close())

    def _receive(self, data: bytes | str) -> None:
        try:
            frame = decode(data)
        except InvalidFrame as error:
            # Junk counts against the frame budget too: a flood of it costs one warning.
            if self._admit(is_message=False):
                log.warning("nbchat: dropped a bad frame from peer %s: %s", self.peer, error)
            return
        peer_data = frame.get("__peerData")
        if isinstance(peer_data, dict) and peer_data.get("type") == "close":
            self._close_soon()  # peerjs close({flush: true})
            return
        chat_frame = parse_chat_frame(frame)
        if (
            chat_frame is not None
            and chat_frame["type"] == ChatFrameType.FILE_PART
            and self._wants_part is not None
            and self._wants_part(self.peer, chat_frame["file"])
        ):
            self._on_frame(self, chat_frame)
            return
        # Malformed frames count too: a flood of junk must not cost a warning each.
        is_message = chat_frame is not None and chat_frame["type"] == ChatFrameType.MESSAGE
        if not self._admit(is_message=is_message):
            return
        if chat_frame is None:
            log.warning("nbchat: dropped a malformed frame from peer %s", self.peer)
            return
        if chat_frame["type"] == ChatFrameType.CHUNK:
            try:
                whole = self._assembler.feed(chat_frame)
            except InvalidFrame as error:
                log.warning("nbchat: dropped a bad chunk from peer %s: %s", self.peer, error)
                return
            if whole is None:
                return
            chat_frame = whole
            if chat_frame["type"] == ChatFrameType.MESSAGE and not self._admit(is_message=True):
                return
        self._on_frame(self, chat_frame)

    def _admit(self, is_message: bool) -> bool:
        """Whether a frame is within this connection's rate limits (warns now and then)."""
        if self._limits is None or self._limits.accept(is_message):
            return True
        dropped = self._limits.report()
        if dropped is not None:
            log.warning("nbchat: peer %s is flooding: dropped %d frames", self.peer, dropped)
        return False

    async def start(self) -> None:
        """Originator: create the channel and send OFFER."""
        self._attach(self.pc.createDataChannel(self.label, ordered=self.reliable))
        add_loopback_host_candidates(self.pc, self._loopback)
        check_consent_often(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        await self._signal(
            FrameType.OFFER,
            self.peer,
            {
                "sdp": {"type": description.type, "sdp": description.sdp},
                "type": "data",
                "connectionId": self.connection_id,
                "label": self.label,
                "reliable": self.reliable,
                "serialization": SERIALIZATION,
                "metadata": self.metadata,
            },
        )

    async def accept(self, sdp: dict[str, Any]) -> None:
        """Answerer: apply the OFFER's SDP and send ANSWER."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp["sdp"], sdp["type"]))
        await self._remote_description_set()
        add_loopback_host_candidates(self.pc, self._loopback)
        check_consent_often(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        await self._signal(
            FrameType.ANSWER,
            self.peer,
            {
                "sdp": {"type": description.type, "sdp": description.sdp},
                "type": "data",
                "connectionId": self.connection_id,
            },
        )

    async def handle_signal(self, kind: str, payload: dict[str, Any]) -> None:
        """ANSWER or CANDIDATE for this connection."""
        if kind == FrameType.ANSWER.value and self.originator and not self._remote_set:
            sdp = payload.get("sdp")
            if not isinstance(sdp, dict) or not isinstance(sdp.get("sdp"), str):
                log.warning("nbchat: malformed ANSWER from peer %s", self.peer)
                return
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp["sdp"], "answer"))
            await self._remote_description_set()
        elif kind == FrameType.CANDIDATE.value:
            candidate = parse_candidate(payload.get("candidate"))
            if candidate is None:
                return
            if self._remote_set:
                await self.pc.addIceCandidate(candidate)
            else:
                self._early_candidates.append(candidate)

    async def _remote_description_set(self) -> None:
        self._remote_set = True
        early, self._early_candidates = self._early_candidates, []
        for candidate in early:
            await self.pc.addIceCandidate(candidate)

    def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame (chunked if big); False if the channel is not open."""
        return self.send_payloads(payloads(frame, new_chunk_id))

    def send_payloads(self, parts: list[bytes]) -> bool:
        """Send a frame already written by :func:`nbchat.core.chunking.payloads` (one
        frame, the same bytes to several links); False if the channel is not open."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or self.closed.is_set():
            return False
        for part in parts:
            channel.send(part)
        return True

    def send_raw(self, payload: bytes | str) -> bool:
        """Send one payload exactly as given: no JSON, no chunking, no checks.

        For tests that play a hostile peer (malformed frames, floods); False if the
        channel is not open.
        """
        channel = self.channel
        if channel is None or channel.readyState != "open" or self.closed.is_set():
            return False
        channel.send(payload)
        return True

    def all_acknowledged(self) -> bool:
        """True when the remote SCTP stack has acknowledged everything sent so far.

        The channel is reliable and ordered, so this means the remote peer holds every
        frame we sent on it. aiortc has no public signal for it; these are its SCTP
        send queues (waiting for the channel, for the congestion window, for a SACK).
        """
        channel, sctp = self.channel, self.pc.sctp
        if channel is None or sctp is None or not self.open:
            return False
        return (
            channel.bufferedAmount == 0
            and not sctp._data_channel_queue
            and not sctp._outbound_queue
            and not sctp._sent_queue
        )

    @property
    def buffered_amount(self) -> int:
        return self.channel.bufferedAmount if self.channel is not None else 0

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._assembler.clear()
        for callback in self._close_callbacks:
            callback(self)
        await self.pc.close()
