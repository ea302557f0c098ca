// Mesh policy: who dials whom, which of two simultaneous dials wins, when to dial again.
//
// The rules, identical in src/nbchat/core/mesh.py and pinned by tests/fixtures/mesh_cases.json:
// - Who links to whom (overlay): up to MESH_SIZE peers in a room, everyone to everyone (a
//   full mesh). In a bigger room, a bounded partial mesh: the peers sit on a ring ordered by
//   a hash of their ids (ringPosition), each links to its RING_NEIGHBOURS nearest on either
//   side, then each adds CHORDS links to the peer at a pseudo-random point of the ring (a
//   hash of its id and the chord's number), probing up to CHORD_PROBE peers onward for one
//   not yet linked and under MAX_LINKS. The links are a pure function of the roster, so
//   every peer computes the same overlay; they move only near a peer who joins or leaves,
//   and no peer ever has more than MAX_LINKS.
// - Of two peers the overlay links (any two, in a full mesh), the smaller id dials; the other
//   waits for its call. Each dials on joining (the roster), after an outage (the roster again)
//   and whenever someone joins or leaves (USER_CONNECTED / USER_DISCONNECTED; in a partial
//   mesh the overlay moves), the overlay's peers with a bigger id it has no link to. Every
//   peer learns of every other either from its roster or from an event, so each pair is
//   dialed once, from one side, even when many join at once (until 2026-11 the newcomer
//   dialed everyone in its roster in a full mesh: peers that joined together each found the
//   other there and both dialed, a third of the connections thrown away by the tie-break). A
//   lone newcomer with a bigger id is dialed by those present as soon as its signaling socket
//   is up, sooner than it would dial them. With a peer of the older rule in the room (a page
//   loaded before an upgrade) a pair may be dialed twice (the tie-break settles it) or, where
//   the old peer has the smaller id and was there first, by neither until the next repair
//   round. Links to present peers the overlay no longer wants are closed (prune; links to
//   absent peers follow the presence rules).
// - A repair round (room sync's ANTI_ENTROPY_MS) dials the overlay's peers (everyone, in a
//   full mesh) with no link and no redial pending, but only from the smaller id, so two peers
//   never dial each other twice.
// - A call from a peer the overlay does not link us to is refused once we hold MAX_LINKS
//   (our roster may be behind the caller's: below the bound we take it, and prune later).
// - Forwarding (forwardTo): in a partial mesh, a message new to our log that came over a link
//   is forwarded as a one-entry `history` frame (a relayed copy) to the linked peers one hop
//   further from its author than we are in the overlay whose FORWARD_PARENTS smallest-id
//   neighbours one hop closer to the author include us: each peer gets the message along
//   shortest paths from at most FORWARD_PARENTS neighbours, not from all of them. While our
//   own links are not yet the overlay's (it is forming or healing), or if the author is not
//   in our roster, to every linked peer but the sender and the author: the tree may have
//   gaps then. The log drops what a peer already holds,
//   so each peer adds each message once, in the same order, and nothing goes via the server;
//   a copy a broken link failed to bring arrives with the next sync. In a full mesh everyone
//   hears the author directly: no forwarding.
// - Simultaneous dials (tie-break): each side keeps the connection dialed by the smaller id.
//   The smaller refuses the bigger's call while its own dial is pending; the bigger drops its
//   own dial and accepts. A call from a peer we hold a link with replaces that link (the peer
//   dialed again: its end of the old one is gone).
// - After a link is lost while the peer is still present, only the smaller id dials again (so
//   the two do not keep colliding), except after a link that never opened, or one that went
//   silent (the other side may not have noticed: it hears nothing either).
// - Redial delays grow by backoffDelay and have no limit on attempts: as long as presence says
//   a peer is in the room, a link to it is worth having, and each try costs one offer per 15
//   to 30 s. A link that opens resets the count.
// - A dial that has not opened after DIAL_TIMEOUT_MS is dropped (then redialed as above); a
//   link ICE reports "disconnected" for SILENT_LINK_MS counts as lost and silent.
//
// Ids compare as strings; peer ids are ASCII, so JavaScript and Python order them alike.

/** A dial that has not opened by then is given up (and retried by the redial rule). */
export const DIAL_TIMEOUT_MS = 20_000;
/**
 * How long a link may stay ICE-"disconnected" before we call it dead and dial again. Chrome
 * reports "disconnected" a few seconds after packets stop, but "failed" (when peerjs closes
 * the connection) much later or never, so without this a path that went silent kept
 * swallowing messages while the status said "Connected".
 */
export const SILENT_LINK_MS = 3_000;
/** Redial backoff: the first delay is REDIAL_BASE_MS (with jitter), doubling up to REDIAL_MAX_MS. */
export const REDIAL_BASE_MS = 500;
export const REDIAL_MAX_MS = 30_000;
/** Up to this many peers in a room, a full mesh (each peer MESH_SIZE - 1 links). */
export const MESH_SIZE = 9;
/** In a bigger room no peer keeps more links than this. */
export const MAX_LINKS = 8;
/** Overlay links to the nearest peers on the hash ring, on each side. */
export const RING_NEIGHBOURS = 2;
/** Overlay links each peer adds to pseudo-random points of the ring (short paths). */
export const CHORDS = 2;
/** How many peers onward from a chord's point to look for one it can link to. */
export const CHORD_PROBE = 8;
/** A forwarded message reaches each peer from at most this many neighbours (its parents). */
export const FORWARD_PARENTS = 2;

/**
 * A peer's place on the ring, 0 to 2**32 - 1: FNV-1a over the UTF-16 code units of `peerId`
 * (then `"#" + salt` if given), finished with murmur3's fmix32 so that similar ids land far
 * apart. Peer ids are ASCII, so Python gets the same number.
 */
export function ringPosition(peerId: string, salt = ""): number {
  const text = salt === "" ? peerId : `${peerId}#${salt}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export type Overlay = ReadonlyMap<string, ReadonlySet<string>>;

const overlays = new Map<string, Overlay>();

/** Who links to whom in a room with these peers: for each peer, the peers it links to.
 *  Symmetric; the same on every peer with the same roster. */
export function overlay(present: Iterable<string>, meshSize = MESH_SIZE, maxLinks = MAX_LINKS): Overlay {
  const peers = [...new Set(present)].sort();
  const key = `${meshSize}/${maxLinks}/${peers.join(" ")}`;
  const cached = overlays.get(key);
  if (cached !== undefined) return cached;
  const links = new Map<string, Set<string>>(peers.map((p) => [p, new Set<string>()]));
  if (peers.length <= meshSize) {
    for (const p of peers) for (const q of peers) if (p !== q) links.get(p)!.add(q);
  } else {
    partialMesh(peers, maxLinks, links);
  }
  overlays.set(key, links);
  if (overlays.size > 8) overlays.delete(overlays.keys().next().value as string);
  return links;
}

const hopsCache = new WeakMap<Overlay, Map<string, Map<string, number>>>();

/** Hops from `source` to every peer over the overlay `links` (breadth first). */
function hopsFrom(links: Overlay, source: string): Map<string, number> {
  let bySource = hopsCache.get(links);
  if (bySource === undefined) {
    bySource = new Map();
    hopsCache.set(links, bySource);
  }
  const cached = bySource.get(source);
  if (cached !== undefined) return cached;
  const hops = new Map<string, number>([[source, 0]]);
  let frontier = [source];
  while (frontier.length > 0) {
    const following: string[] = [];
    for (const peer of frontier) {
      for (const other of links.get(peer) ?? []) {
        if (!hops.has(other)) {
          hops.set(other, hops.get(peer)! + 1);
          following.push(other);
        }
      }
    }
    frontier = following;
  }
  bySource.set(source, hops);
  return hops;
}

function partialMesh(peers: string[], maxLinks: number, links: Map<string, Set<string>>): void {
  const at = new Map(peers.map((p) => [p, ringPosition(p)]));
  const ring = [...peers].sort((a, b) => at.get(a)! - at.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  const positions = ring.map((p) => at.get(p)!);
  const n = ring.length;
  const link = (a: string, b: string): boolean => {
    const la = links.get(a)!;
    const lb = links.get(b)!;
    if (a === b || la.has(b) || la.size >= maxLinks || lb.size >= maxLinks) return false;
    la.add(b);
    lb.add(a);
    return true;
  };
  for (let distance = 1; distance <= RING_NEIGHBOURS; distance += 1) {
    for (let i = 0; i < n; i += 1) link(ring[i], ring[(i + distance) % n]);
  }
  for (let chord = 1; chord <= CHORDS; chord += 1) {
    for (const a of ring) {
      if (links.get(a)!.size >= maxLinks) continue;
      const point = ringPosition(a, String(chord));
      let start = 0;
      let end = n;
      while (start < end) {
        const mid = (start + end) >>> 1;
        if (positions[mid] < point) start = mid + 1;
        else end = mid;
      }
      for (let step = 0; step < CHORD_PROBE; step += 1) if (link(a, ring[(start + step) % n])) break;
    }
  }
}

/** Milliseconds to wait before try `attempt` (from 0): exponential with jitter (`random` in
 *  [0, 1) scales it to 50-100 %), so a restart is not hit by everyone at once. */
export function backoffDelay(
  attempt: number,
  random: number,
  baseMs: number = REDIAL_BASE_MS,
  maxMs: number = REDIAL_MAX_MS,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, attempt), 32));
  return Math.floor(ceiling * (0.5 + random / 2) + 0.5);
}

/** What the tie-break needs to know of an existing link to the caller. */
export interface LinkState {
  open: boolean;
  dialedByUs: boolean;
}

/** Decisions for peer `selfId`; counts redial attempts per peer. `meshSize` and `maxLinks`
 *  must be the same on every peer of a room (the shared constants; tests use smaller ones). */
export class MeshPolicy {
  private readonly attempts = new Map<string, number>();

  constructor(
    readonly selfId: string,
    readonly meshSize = MESH_SIZE,
    readonly maxLinks = MAX_LINKS,
  ) {}

  /** The peers the overlay links us to, given who is present (we count as present). */
  wanted(present: Iterable<string>): ReadonlySet<string> {
    return overlay([...present, this.selfId], this.meshSize, this.maxLinks).get(this.selfId)!;
  }

  /** Whether a room with these peers (and us) is past the full-mesh size. */
  partial(present: Iterable<string>): boolean {
    return new Set([...present, this.selfId]).size > this.meshSize;
  }

  /** Whom to dial on joining (or rejoining), in roster order: as dialsOnChange (the overlay's
   *  peers, everyone in a full mesh, with a bigger id and no link). */
  dialsOnRoster(present: Iterable<string>, linked: ReadonlySet<string>): string[] {
    return this.dialsOnChange(present, linked);
  }

  /** Whom to dial when someone joined or left (and on joining), in roster order: the overlay's
   *  peers (everyone present, in a full mesh) with a bigger id and no link. */
  dialsOnChange(present: Iterable<string>, linked: ReadonlySet<string>): string[] {
    const all = [...present];
    const wanted = this.wanted(all);
    return all.filter((p) => wanted.has(p) && this.selfId < p && !linked.has(p));
  }

  /** Whom to dial in a repair round: the overlay's, unlinked, no redial pending, bigger id. */
  repairDials(present: Iterable<string>, linked: ReadonlySet<string>, redialing: ReadonlySet<string>): string[] {
    const all = [...present];
    const wanted = this.wanted(all);
    return all.filter((p) => wanted.has(p) && this.selfId < p && !linked.has(p) && !redialing.has(p));
  }

  /** Whether to accept a call from `caller` (else refuse it: our own dial wins, or we are at
   *  MAX_LINKS and the overlay of `present` does not link us to it). `links` counts our links
   *  (open or being made) to other peers. */
  acceptIncoming(caller: string, existing: LinkState | null, present?: Iterable<string>, links = 0): boolean {
    if (present !== undefined && links >= this.maxLinks && !this.wanted(present).has(caller)) return false;
    if (existing === null || existing.open || !existing.dialedByUs) return true;
    return !(this.selfId < caller);
  }

  /** Links to close (sorted): in a partial mesh, to present peers the overlay does not link us
   *  to. (Links to absent peers follow the presence rules.) */
  prune(present: Iterable<string>, linked: Iterable<string>): string[] {
    const all = new Set(present);
    if (!this.partial(all)) return [];
    const wanted = this.wanted(all);
    return [...linked].filter((p) => all.has(p) && !wanted.has(p)).sort();
  }

  /** Where to forward a message new to our log that `cameFrom` sent us (sorted). */
  forwardTo(author: string, cameFrom: string, linked: Iterable<string>, present: Iterable<string>): string[] {
    const all = [...present];
    if (!this.partial(all)) return [];
    const links = overlay([...all, this.selfId], this.meshSize, this.maxLinks);
    const mine = new Set(linked);
    const others = [...mine].filter((p) => p !== cameFrom && p !== author && p !== this.selfId);
    const wanted = links.get(this.selfId)!;
    const complete = mine.size === wanted.size && [...mine].every((p) => wanted.has(p));
    if (!links.has(author) || !complete) return others.sort();
    const hops = hopsFrom(links, author);
    const further = (hops.get(this.selfId) ?? -1) + 1;
    const parents = (peer: string): string[] =>
      [...links.get(peer)!]
        .filter((q) => hops.get(q) === further - 1)
        .sort()
        .slice(0, FORWARD_PARENTS);
    return others.filter((p) => hops.get(p) === further && parents(p).includes(this.selfId)).sort();
  }

  onLinkOpen(peer: string): void {
    this.attempts.delete(peer);
  }

  /** The delay (ms) before dialing `peer` again, or null: not ours to redial. `present`: the
   *  peer is in the room and the overlay links us to it. */
  onLinkLost(peer: string, lost: { wasOpen: boolean; silent: boolean; present: boolean; random: number }): number | null {
    if (!lost.present) {
      this.attempts.delete(peer);
      return null;
    }
    if (lost.wasOpen && !lost.silent && !(this.selfId < peer)) return null;
    const attempt = this.attempts.get(peer) ?? 0;
    this.attempts.set(peer, attempt + 1);
    return backoffDelay(attempt, lost.random);
  }

  /** `peer` left the room. */
  forget(peer: string): void {
    this.attempts.delete(peer);
  }
}
