"""Mesh policy: who dials whom, which of two simultaneous dials wins, when to dial again.

The rules, identical in ``js/core/mesh.ts`` and pinned by ``tests/fixtures/mesh_cases.json``:

- Who links to whom (:func:`overlay`): up to MESH_SIZE peers in a room, everyone to
  everyone (a full mesh). In a bigger room, a bounded partial mesh: the peers sit on a
  ring ordered by a hash of their ids (:func:`ring_position`), each links to its
  RING_NEIGHBOURS nearest on either side, then each adds CHORDS links to the peer at a
  pseudo-random point of the ring (a hash of its id and the chord's number), probing up
  to CHORD_PROBE peers onward for one that is not yet linked and under MAX_LINKS. The
  links are a pure function of the roster, so every peer computes the same overlay; they
  move only near a peer who joins or leaves, and no peer ever has more than MAX_LINKS.
- Of two peers the overlay links (any two, in a full mesh), the smaller id dials; the
  other waits for its call. Each dials on joining (the roster), after an outage (the
  roster again) and whenever someone joins or leaves (``USER_CONNECTED`` /
  ``USER_DISCONNECTED``; in a partial mesh the overlay moves), the overlay's peers with a
  bigger id it has no link to. Every peer learns of every other either from its roster or
  from an event, so each pair is dialed once, from one side, even when many join at once
  (until 2026-11 the newcomer dialed everyone in its roster in a full mesh: peers that
  joined together each found the other there and both dialed, a third of the connections
  thrown away by the tie-break). A lone newcomer with a bigger id is dialed by those
  present as soon as its signaling socket is up, sooner than it would dial them. With a
  peer of the older rule in the room (a page loaded before an upgrade) a pair may be
  dialed twice (the tie-break settles it) or, where the old peer has the smaller id and
  was there first, by neither until the next repair round. Links to present peers the
  overlay no longer wants are closed (:meth:`MeshPolicy.prune`; links to absent peers
  follow the presence rules).
- A repair round (room sync's ANTI_ENTROPY_MS) dials the overlay's peers (everyone, in a
  full mesh) with no link and no redial pending, but only from the smaller id, so two
  peers never dial each other twice.
- A call from a peer the overlay does not link us to is refused once we hold MAX_LINKS
  (our roster may be behind the caller's: below the bound we take it, and prune later).
- Forwarding (:meth:`MeshPolicy.forward_to`): in a partial mesh, a message new to our log
  that came over a link is forwarded as a one-entry ``history`` frame (a relayed copy) to
  the linked peers one hop further from its author than we are in the overlay whose
  FORWARD_PARENTS smallest-id neighbours one hop closer to the author include us: each
  peer gets the message along shortest paths from at most FORWARD_PARENTS neighbours, not
  from all of them. While our own links are not yet the overlay's (it is forming or
  healing), or if the author is not in our roster, to every linked peer but the sender
  and the author: the tree may have gaps then. The log
  drops what a peer already holds, so each peer adds each message once, in the same
  order, and nothing goes via the server; a copy a broken link failed to bring arrives
  with the next sync. In a full mesh everyone hears the author directly: no forwarding.
- Simultaneous dials (tie-break): each side keeps the connection dialed by the smaller
  id. The smaller refuses the bigger's call while its own dial is pending; the bigger
  accepts (the Python peer keeps its own dial until one of the two opens, in case the
  smaller dropped the dial it answers: peer/mesh.py). A call from a peer we hold a link
  with replaces that link (the peer dialed again: its end of the old one is gone).
- After a link is lost while the peer is still present, only the smaller id dials again
  (so the two do not keep colliding), except after a link that never opened, or one that
  went silent (the other side may not have noticed: it hears nothing either).
- Redial delays grow by :func:`backoff_delay` and have no limit on attempts: as long as
  presence says a peer is in the room, a link to it is worth having, and each try costs
  one offer per 15 to 30 s. (The Python peer used to stop after 6 tries, within 20 s: a
  network outage of a minute then split the room until someone left and came back.)
  A link that opens resets the count.
- A dial that has not opened after DIAL_TIMEOUT_MS is dropped (then redialed as above);
  a link ICE reports "disconnected" for SILENT_LINK_MS counts as lost and silent.

Ids compare as strings; peer ids are ASCII, so JavaScript and Python order them alike.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CHORDS",
    "CHORD_PROBE",
    "DIAL_TIMEOUT_MS",
    "FORWARD_PARENTS",
    "MAX_LINKS",
    "MESH_SIZE",
    "RING_NEIGHBOURS",
    "REDIAL_BASE_MS",
    "REDIAL_MAX_MS",
    "SILENT_LINK_MS",
    "LinkState",
    "MeshPolicy",
    "backoff_delay",
    "overlay",
    "ring_position",
]

#: A dial that has not opened by then is given up (and retried by the redial rule).
DIAL_TIMEOUT_MS = 20_000
#: How long a link may stay ICE-"disconnected" before we call it dead and dial again.
#: Chrome reports "disconnected" a few seconds after packets stop, but "failed" (when
#: peerjs closes the connection) much later or never, so without this a path that went
#: silent kept swallowing messages while the status said "Connected". (aiortc has no
#: "disconnected" state: the Python peer closes such a link after its ICE consent checks
#: fail, see peer/ice.py, then it counts as lost.)
SILENT_LINK_MS = 3_000
#: Redial backoff: the first delay is REDIAL_BASE_MS (with jitter), doubling up to REDIAL_MAX_MS.
REDIAL_BASE_MS = 500
REDIAL_MAX_MS = 30_000
#: Up to this many peers in a room, a full mesh (each peer MESH_SIZE - 1 links).
MESH_SIZE = 9
#: In a bigger room no peer keeps more links than this.
MAX_LINKS = 8
#: Overlay links to the nearest peers on the hash ring, on each side.
RING_NEIGHBOURS = 2
#: Overlay links each peer adds to pseudo-random points of the ring (short paths).
CHORDS = 2
#: How many peers onward from a chord's point to look for one it can link to.
CHORD_PROBE = 8
#: A forwarded message reaches each peer from at most this many neighbours (its parents).
FORWARD_PARENTS = 2

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def ring_position(peer_id: str, salt: str = "") -> int:
    """A peer's place on the ring, 0 to 2**32 - 1: FNV-1a over the UTF-16 code units of
    ``peer_id`` (then ``"#" + salt`` if given), finished with murmur3's fmix32 so that
    similar ids land far apart. Peer ids are ASCII, so JavaScript gets the same number."""
    h = _FNV_OFFSET
    for ch in peer_id + ("#" + salt if salt else ""):
        h = ((h ^ ord(ch)) * _FNV_PRIME) & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


_overlays: OrderedDict[tuple[frozenset[str], int, int], dict[str, frozenset[str]]] = OrderedDict()


def overlay(
    present: Iterable[str], mesh_size: int = MESH_SIZE, max_links: int = MAX_LINKS
) -> Mapping[str, frozenset[str]]:
    """Who links to whom in a room with these peers (see the rules above): for each peer,
    the peers it links to. Symmetric; the same on every peer with the same roster."""
    peers = frozenset(present)
    key = (peers, mesh_size, max_links)
    cached = _overlays.get(key)
    if cached is not None:
        _overlays.move_to_end(key)
        return cached
    if len(peers) <= mesh_size:
        result = {p: peers - {p} for p in peers}
    else:
        result = {p: frozenset(q) for p, q in _partial_mesh(peers, max_links).items()}
    _overlays[key] = result
    if len(_overlays) > 64:  # rosters seen lately: many peers of one room in one process
        _overlays.popitem(last=False)
    return result


# (id of an overlay, source) -> (that overlay, kept so the id stays its own; hops).
_hops: OrderedDict[tuple[int, str], tuple[object, dict[str, int]]] = OrderedDict()


def _hops_from(links: Mapping[str, frozenset[str]], source: str) -> dict[str, int]:
    """Hops from ``source`` to every peer over the overlay ``links`` (breadth first)."""
    key = (id(links), source)
    cached = _hops.get(key)
    if cached is not None and cached[0] is links:
        return cached[1]
    hops = {source: 0}
    frontier = [source]
    while frontier:
        following = []
        for peer in frontier:
            for other in links[peer]:
                if other not in hops:
                    hops[other] = hops[peer] + 1
                    following.append(other)
        frontier = following
    _hops[key] = (links, hops)
    if len(_hops) > 1024:
        _hops.popitem(last=False)
    return hops


def _partial_mesh(peers: frozenset[str], max_links: int) -> dict[str, set[str]]:
    ring = sorted(peers, key=lambda p: (ring_position(p), p))
    positions = [ring_position(p) for p in ring]
    n = len(ring)
    links: dict[str, set[str]] = {p: set() for p in ring}

    def link(a: str, b: str) -> bool:
        if a == b or b in links[a] or len(links[a]) >= max_links or len(links[b]) >= max_links:
            return False
        links[a].add(b)
        links[b].add(a)
        return True

    for distance in range(1, RING_NEIGHBOURS + 1):
        for i in range(n):
            link(ring[i], ring[(i + distance) % n])
    for chord in range(1, CHORDS + 1):
        for a in ring:
            if len(links[a]) >= max_links:
                continue
            start = bisect.bisect_left(positions, ring_position(a, str(chord)))
            for step in range(CHORD_PROBE):
                if link(a, ring[(start + step) % n]):
                    break
    return links


def backoff_delay(
    attempt: int, random: float, base_ms: int = REDIAL_BASE_MS, max_ms: int = REDIAL_MAX_MS
) -> int:
    """Milliseconds to wait before try ``attempt`` (from 0): exponential with jitter
    (``random`` in [0, 1) scales it to 50-100 %), so a restart is not hit by everyone at once."""
    ceiling = min(max_ms, base_ms * (1 << min(max(0, attempt), 32)))
    # floor(x + 0.5) is JavaScript's Math.round; Python's round() rounds halves to even.
    return math.floor(ceiling * (0.5 + random / 2) + 0.5)


@dataclass(frozen=True)
class LinkState:
    """What the tie-break needs to know of an existing link to the caller."""

    open: bool
    dialed_by_us: bool


class MeshPolicy:
    """Decisions for peer ``self_id``; counts redial attempts per peer.

    ``mesh_size`` and ``max_links`` must be the same on every peer of a room (they default
    to the shared constants; tests use smaller ones)."""

    def __init__(
        self, self_id: str, mesh_size: int = MESH_SIZE, max_links: int = MAX_LINKS
    ) -> None:
        self.self_id = self_id
        self.mesh_size = mesh_size
        self.max_links = max_links
        self._attempts: dict[str, int] = {}

    def wanted(self, present: Iterable[str]) -> frozenset[str]:
        """The peers the overlay links us to, given who is present (we count as present)."""
        return overlay([*present, self.self_id], self.mesh_size, self.max_links)[self.self_id]

    def partial(self, present: Collection[str]) -> bool:
        """Whether a room with these peers (and us) is past the full-mesh size."""
        return len({*present, self.self_id}) > self.mesh_size

    def dials_on_roster(self, present: Iterable[str], linked: Container[str]) -> list[str]:
        """Whom to dial on joining (or rejoining), in roster order: as :meth:`dials_on_change`
        (the overlay's peers, everyone in a full mesh, with a bigger id and no link)."""
        return self.dials_on_change(present, linked)

    def dials_on_change(self, present: Iterable[str], linked: Container[str]) -> list[str]:
        """Whom to dial when someone joined or left (and on joining), in roster order: the
        overlay's peers (everyone present, in a full mesh) with a bigger id and no link."""
        present = list(present)
        wanted = self.wanted(present)
        return [p for p in present if p in wanted and self.self_id < p and p not in linked]

    def repair_dials(
        self, present: Iterable[str], linked: Container[str], redialing: Container[str]
    ) -> list[str]:
        """Whom to dial in a repair round: the overlay's, unlinked, no redial pending, bigger id."""
        present = list(present)
        wanted = self.wanted(present)
        return [
            p
            for p in present
            if p in wanted and self.self_id < p and p not in linked and p not in redialing
        ]

    def accept_incoming(
        self,
        caller: str,
        existing: LinkState | None,
        present: Iterable[str] | None = None,
        links: int = 0,
    ) -> bool:
        """Whether to accept a call from ``caller`` (else refuse it: our own dial wins, or
        we are at MAX_LINKS and the overlay of ``present`` does not link us to it).
        ``links`` counts our links (open or being made) to other peers."""
        if present is not None and links >= self.max_links and caller not in self.wanted(present):
            return False
        if existing is None or existing.open or not existing.dialed_by_us:
            return True
        return not self.self_id < caller

    def prune(self, present: Iterable[str], linked: Iterable[str]) -> list[str]:
        """Links to close (sorted): in a partial mesh, to present peers the overlay does
        not link us to. (Links to absent peers follow the presence rules.)"""
        present = set(present)
        if not self.partial(present):
            return []
        wanted = self.wanted(present)
        return sorted(p for p in linked if p in present and p not in wanted)

    def forward_to(
        self, author: str, came_from: str, linked: Iterable[str], present: Collection[str]
    ) -> list[str]:
        """Where to forward a message new to our log that ``came_from`` sent us (sorted)."""
        if not self.partial(present):
            return []
        links = overlay([*present, self.self_id], self.mesh_size, self.max_links)
        linked = set(linked)
        others = [p for p in linked if p != came_from and p != author and p != self.self_id]
        if author not in links or linked != links[self.self_id]:
            return sorted(others)
        hops = _hops_from(links, author)
        further = hops.get(self.self_id, -1) + 1

        def parents(peer: str) -> list[str]:
            closer = sorted(q for q in links[peer] if hops.get(q) == further - 1)
            return closer[:FORWARD_PARENTS]

        return sorted(p for p in others if hops.get(p) == further and self.self_id in parents(p))

    def on_link_open(self, peer: str) -> None:
        self._attempts.pop(peer, None)

    def on_link_lost(
        self, peer: str, *, was_open: bool, silent: bool, present: bool, random: float
    ) -> int | None:
        """The delay (ms) before dialing ``peer`` again, or None: not ours to redial.
        ``present``: the peer is in the room and the overlay links us to it."""
        if not present:
            self._attempts.pop(peer, None)
            return None
        if was_open and not silent and not self.self_id < peer:
            return None
        attempt = self._attempts.get(peer, 0)
        self._attempts[peer] = attempt + 1
        return backoff_delay(attempt, random)

    def forget(self, peer: str) -> None:
        """``peer`` left the room."""
        self._attempts.pop(peer, None)
