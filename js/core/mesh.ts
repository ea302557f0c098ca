// Mesh policy: who dials whom, which of two simultaneous dials wins, when to dial again.
//
// The rules, identical in src/nbchat/core/mesh.py and pinned by tests/fixtures/mesh_cases.json:
// - The newcomer dials everyone present (the roster) it has no link to; the others wait for
//   its call. Back after a signaling outage, a peer dials everyone again, as a newcomer.
// - A repair round (room sync's ANTI_ENTROPY_MS) dials present peers with no link and no
//   redial pending, but only from the smaller id, so two peers never dial each other twice.
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

/** Decisions for peer `selfId`; counts redial attempts per peer. */
export class MeshPolicy {
  private readonly attempts = new Map<string, number>();

  constructor(readonly selfId: string) {}

  /** Whom to dial on joining (or rejoining): everyone present we have no link to. */
  dialsOnRoster(present: Iterable<string>, linked: ReadonlySet<string>): string[] {
    return [...present].filter((p) => p !== this.selfId && !linked.has(p));
  }

  /** Whom to dial in a repair round: present, unlinked, no redial pending, bigger id. */
  repairDials(present: Iterable<string>, linked: ReadonlySet<string>, redialing: ReadonlySet<string>): string[] {
    return [...present].filter((p) => this.selfId < p && !linked.has(p) && !redialing.has(p));
  }

  /** Whether to accept a call from `caller` (else refuse it: our own dial wins). */
  acceptIncoming(caller: string, existing: LinkState | null): boolean {
    if (existing === null || existing.open || !existing.dialedByUs) return true;
    return !(this.selfId < caller);
  }

  onLinkOpen(peer: string): void {
    this.attempts.delete(peer);
  }

  /** The delay (ms) before dialing `peer` again, or null: not ours to redial. */
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
