"""ICE set-up for aiortc: the server's ICE servers only, plus a loopback host candidate
where the host has no other IPv4 address."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.sdp import candidate_from_sdp

__all__ = [
    "LOOPBACK_CANDIDATE_MODES",
    "LoopbackCandidate",
    "NbchatRTCConfiguration",
    "add_loopback_host_candidates",
    "check_consent_often",
    "parse_candidate",
    "rtc_configuration",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: How long the host's addresses are reused between ICE gatherings (see _cached_addresses).
HOST_ADDRESSES_TTL = 2.0
CONSENT_INTERVAL = 1.0  # seconds between ICE consent checks on a link (aioice: 5)
CONSENT_FAILURES = 5  # checks missed in a row before the link counts as dead (aioice: 6)


LoopbackCandidate = Literal["auto", "always", "never"]
LOOPBACK_CANDIDATE_MODES: tuple[LoopbackCandidate, ...] = ("auto", "always", "never")


@dataclass
class NbchatRTCConfiguration(RTCConfiguration):
    """aiortc's RTCConfiguration, plus when to add a 127.0.0.1 host candidate (see
    :func:`add_loopback_host_candidates`)."""

    loopback_candidate: LoopbackCandidate = "auto"


def rtc_configuration(
    ice_servers: list[dict[str, Any]],
    relay_only: bool = False,
    loopback_candidate: LoopbackCandidate = "auto",
) -> NbchatRTCConfiguration:
    """The session config's ICE servers; none means none (aiortc would add Google STUN).
    ``relay_only`` allows only TURN-relayed candidates (no peer learns our addresses).
    ``loopback_candidate``: see :func:`add_loopback_host_candidates`."""
    if loopback_candidate not in LOOPBACK_CANDIDATE_MODES:
        raise ValueError(
            f"loopback_candidate must be one of {LOOPBACK_CANDIDATE_MODES}, "
            f"not {loopback_candidate!r}"
        )
    servers = []
    for server in ice_servers:
        urls = server.get("urls")
        if isinstance(urls, (str, list)) and urls:
            servers.append(
                RTCIceServer(
                    urls=urls,
                    username=server.get("username"),
                    credential=server.get("credential"),
                )
            )
        else:
            log.warning("nbchat: ignoring an ICE server without urls: %r", server)
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return NbchatRTCConfiguration(
        iceServers=servers, iceTransportPolicy=policy, loopback_candidate=loopback_candidate
    )


def _ice_connection_once(pc: RTCPeerConnection, mark: str) -> Any:
    """The aioice Connection under ``pc``'s data transport, the first time ``mark`` asks
    for it (None after that, or before the SCTP transport exists)."""
    sctp = pc.sctp
    if sctp is None:
        return None
    connection = sctp.transport.transport.iceGatherer._connection
    if getattr(connection, mark, False):
        return None
    setattr(connection, mark, True)
    return connection


def _cache_host_addresses() -> None:
    """Make aioice list the host's network interfaces at most every HOST_ADDRESSES_TTL s.

    aioice walks every interface (``ifaddr``, then ``ipaddress`` on each address) for every
    connection it gathers for: ~10 % of the CPU a Python process spends forming a mesh of
    16 peers. Interfaces change rarely; a link gathered within two seconds of a change may
    miss the new address and is repaired like any failed link.
    """
    from aioice import ice as aioice_ice

    original = aioice_ice.get_host_addresses
    if getattr(original, "_nbchat_cached", False):
        return
    cache: dict[tuple[bool, bool], tuple[float, list[str]]] = {}

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        now = time.monotonic()
        hit = cache.get((use_ipv4, use_ipv6))
        if hit is None or now - hit[0] > HOST_ADDRESSES_TTL:
            hit = cache[(use_ipv4, use_ipv6)] = (now, original(use_ipv4, use_ipv6))
        return list(hit[1])

    get_host_addresses._nbchat_cached = True  # type: ignore[attr-defined]
    aioice_ice.get_host_addresses = get_host_addresses


def add_loopback_host_candidates(pc: RTCPeerConnection, mode: LoopbackCandidate = "auto") -> None:
    """Make the data transport's ICE agent also gather a 127.0.0.1 host candidate.

    aioice leaves loopback out of its host candidates, so on a machine (or network
    namespace) with only ``lo`` aiortc would offer nothing and never connect. ``mode``:

    - ``"auto"`` (the default): only if aioice found no IPv4 address of its own. Any
      address of this host reaches a peer on the same host (the kernel routes it over
      ``lo``), and a peer elsewhere cannot use 127.0.0.1 at all, so the loopback candidate
      only adds a socket, an SDP line and ICE checks there: with eth0's IPv4 and IPv6 it
      made 5 candidate pairs per link instead of 2 (docs/bench-peer.md).
    - ``"always"``: also next to other addresses (e.g. a host firewall that drops UDP
      to its own eth0 address but not on ``lo``).
    - ``"never"``: as aioice does.

    Call this after the SCTP transport exists (``createDataChannel`` or
    ``setRemoteDescription`` with an offer) and before ``setLocalDescription``, which
    gathers.
    """
    # aioice's Connection has no public way to add a host address; wrap its gathering.
    _cache_host_addresses()
    if mode == "never":
        return
    connection = _ice_connection_once(pc, "_nbchat_loopback")
    if connection is None:
        return
    gather: Callable[[], Awaitable[None]] = connection.gather_candidates

    async def gather_with_loopback() -> None:
        await gather()
        if connection._transport_policy.name == "RELAY":
            return
        if any(c.host == LOOPBACK for c in connection._local_candidates):
            return
        if mode == "auto" and any(
            c.type == "host" and ":" not in c.host for c in connection._local_candidates
        ):
            return
        for component in connection._components:
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=[LOOPBACK]
            )

    connection.gather_candidates = gather_with_loopback


def check_consent_often(
    pc: RTCPeerConnection, interval: float = CONSENT_INTERVAL, failures: int = CONSENT_FAILURES
) -> None:
    """Notice a silent path in seconds, as browsers do, not in half a minute.

    A link whose packets stop arriving (a firewall or NAT change, a suspended laptop)
    only closes when ICE consent (RFC 7675) expires. aioice checks every 5 s and gives up
    after 6 misses, ~30 s during which messages go into a dead link; Chrome reports such
    a path "disconnected" within a few seconds and nbchat's browsers then redial. This
    makes this connection check every ``interval`` s and close after ``failures`` misses
    in a row, which closes the data channel and lets the mesh dial again. Same timing
    rule as :func:`add_loopback_host_candidates`: call it before ``setLocalDescription``.

    A round in which the other end's own check reached us (authenticated) sends none:
    the path in is alive, and the other end watches the path out with its checks (if they
    stop arriving, ours resume). Two aiortc peers thus settle into one end checking, half
    the STUN traffic, the largest part of an idle big room's CPU (docs/bench-peer.md).
    """
    connection = _ice_connection_once(pc, "_nbchat_consent")
    if connection is None:
        return
    from aioice import stun

    heard = 0  # checks from the other end that aioice authenticated and answered
    # Rounds woken and rounds that sent checks (tests read them).
    counts = connection._nbchat_consent_rounds = {"rounds": 0, "sent": 0}
    check_incoming = connection.check_incoming

    def counting_check_incoming(*args: Any, **kwargs: Any) -> None:
        nonlocal heard
        heard += 1
        check_incoming(*args, **kwargs)

    connection.check_incoming = counting_check_incoming

    async def query_consent() -> None:  # aioice starts this once ICE has connected
        missed = 0
        key = (connection.remote_password or "").encode("utf8")
        seen = heard
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            counts["rounds"] += 1
            if heard != seen:
                seen, missed = heard, 0
                continue
            counts["sent"] += 1
            for pair in list(connection._nominated.values()):
                request = connection.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request, pair.remote_addr, integrity_key=key, retransmissions=0
                    )
                except stun.TransactionError:
                    missed += 1
                else:
                    missed = 0
            if missed >= failures:
                log.info(
                    "nbchat: ICE consent lost (%d checks unanswered); closing the link", missed
                )
                connection._query_consent_task = None
                await connection.close()
                return

    connection.query_consent = query_consent


def parse_candidate(value: object) -> RTCIceCandidate | None:
    """A browser's RTCIceCandidateInit (``{candidate, sdpMid, sdpMLineIndex}``) for aiortc."""
    if not isinstance(value, dict):
        return None
    line = value.get("candidate")
    if not isinstance(line, str) or not line:
        return None  # an end-of-candidates marker; aiortc needs none
    if line.startswith("candidate:"):
        line = line[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(line)
    except (AssertionError, ValueError, IndexError) as error:
        log.info("nbchat: ignoring an unparsable ICE candidate %r (%s)", line[:120], error)
        return None
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if type(index) is int else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0
    return candidate
