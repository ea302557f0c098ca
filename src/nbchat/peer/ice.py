"""ICE set-up for aiortc: the server's ICE servers only, plus loopback host candidates."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

__all__ = ["add_loopback_host_candidates", "parse_candidate", "rtc_configuration"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def rtc_configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """The session config's ICE servers; none means none (aiortc would add Google STUN)."""
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
    return RTCConfiguration(iceServers=servers)


def add_loopback_host_candidates(pc: RTCPeerConnection) -> None:
    """Make the data transport's ICE agent also gather a 127.0.0.1 host candidate.

    aioice leaves loopback out of its host candidates, so on a machine (or network
    namespace) with only ``lo`` aiortc would offer nothing and never connect. Call this
    after the SCTP transport exists (``createDataChannel`` or ``setRemoteDescription``
    with an offer) and before ``setLocalDescription``, which gathers.
    """
    sctp = pc.sctp
    if sctp is None:
        return
    # aioice's Connection has no public way to add a host address; wrap its gathering.
    connection = sctp.transport.transport.iceGatherer._connection
    if getattr(connection, "_nbchat_loopback", False):
        return
    connection._nbchat_loopback = True  # type: ignore[attr-defined]
    gather: Callable[[], Awaitable[None]] = connection.gather_candidates

    async def gather_with_loopback() -> None:
        await gather()
        if connection._transport_policy.name == "RELAY":
            return
        if any(c.host == LOOPBACK for c in connection._local_candidates):
            return
        for component in connection._components:
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=[LOOPBACK]
            )

    connection.gather_candidates = gather_with_loopback  # type: ignore[method-assign]


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
