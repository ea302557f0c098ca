// Room sync: the sans-I/O state machine that keeps every peer's message log the same.
//
// The rules, identical in src/nbchat/core/sync.py and pinned by tests/fixtures/sync_cases.json
// (docs/protocol.md §4):
// - When a link to a peer opens, we send it `sync` with what we hold (`have`, counted for that
//   peer: only first-hand copies of its own messages), and, when we hold seqs past a gap (a
//   stored copy lacks what was said off the record), `beyond`: those seqs as ranges.
// - A `sync` is answered with `history` batches of every message the asker lacks (past `have`
//   and not in `beyond`), never the
//   asker's own (we are not a source for those), newest first: the batches are cut from the
//   newest message back (each batch itself in log order), the first (newest) goes at once, so
//   the joiner's screen fills before the rest crosses; the others wait in the peer's backlog
//   and leave one per drain(peer), which the caller calls when the link has room, so a live
//   message never queues behind more than a batch. A new answer replaces the backlog; a closed
//   link drops it (a link opening keeps it: the sync it answers can be handled before the
//   open event). At most one answer per peer every
//   SYNC_ANSWER_INTERVAL_MS: syncs arriving sooner wait, and only the latest waiting one is
//   answered when the interval ends, so a peer syncing in a loop cannot make us resend the
//   history each time.
// - Every ANTI_ENTROPY_MS every open link is sent `sync` again (a repair round), so a message
//   lost to a broken mesh edge still arrives.
// - A `message`, or a `history` entry, whose text is over the room's max_message_bytes is
//   dropped: senders refuse to send one.
// - A `sync` tells how far the asker holds our own messages: "confirmed".
// - Entries imported from an export file (importHistory) are checked as a relayed `history`
//   is (nothing in a file is first-hand; a connected author's entries come from that author
//   only; over the limit dropped); those already held are skipped, not counted. Nothing is
//   sent: peers that lack them get them in the next sync answer. Events name the peer "".
// - Batches: a `history` batch closes before its JSON would reach HISTORY_BATCH_BYTES as it
//   goes on the wire (a signed entry without `id` and `user`: core/signing onWire), so it is
//   one data-channel frame unless a single message is bigger (then it is chunked).
//
// Inputs are frames already parsed from JSON and the time in milliseconds (any monotonic
// origin); every method returns the frames to send, addressed by peer id, and events.

import type { ChatMessage, Identity } from "../protocol";
import { CHUNK_THRESHOLD_BYTES } from "./chunking";
import { ChatFrameType, type ChatFrame, utf8Length } from "./frames";
import { InvalidMessage, type MessageLog } from "./msglog";
import { onWire } from "./signing";

/** At most one sync answer per peer this often. Honest peers sync on connecting and every
 *  ANTI_ENTROPY_MS; a peer syncing in a loop would otherwise cost us the whole history each time. */
export const SYNC_ANSWER_INTERVAL_MS = 2_000;
/** Between repair rounds (a `sync` on every open link). */
export const ANTI_ENTROPY_MS = 15_000;
/** A `history` batch stays under this many bytes of JSON (one data-channel frame). */
export const HISTORY_BATCH_BYTES = CHUNK_THRESHOLD_BYTES;
/** Room for the `{"type":"history","messages":[…]}` envelope. */
const ENVELOPE_BYTES = 64;

/** Send `frame` to peer `to`. */
export interface Send {
  to: string;
  frame: ChatFrame;
}

export type SyncEvent =
  /** Messages from `peer` that entered the log (or replaced a relayed copy). */
  | { type: "added"; peer: string; messages: ChatMessage[] }
  /** `history` entries from `peer` the log refused, with the reasons. */
  | { type: "rejected"; peer: string; reasons: string[] }
  /** `count` messages from `peer` dropped for being over the room's size limit. */
  | { type: "too_big"; peer: string; count: number }
  /** A frame (its type) from `peer` that could not be used, and why. */
  | { type: "invalid"; peer: string; frame: string; reason: string }
  /** `peer` holds our own messages up to `seq` (it said so in a `sync`). */
  | { type: "confirmed"; peer: string; seq: number }
  /** A repair round began: the mesh may dial present peers it has no link to. */
  | { type: "repair" };

export interface SyncOutput {
  sends: Send[];
  events: SyncEvent[];
}

function output(): SyncOutput {
  return { sends: [], events: [] };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `messages` in order, in batches that each fit one data-channel frame, cut as asked for. */
function* batchesOf(messages: Iterable<ChatMessage>): Generator<ChatMessage[]> {
  let batch: ChatMessage[] = [];
  let size = ENVELOPE_BYTES;
  for (const message of messages) {
    const cost = utf8Length(JSON.stringify(onWire(message))) + 1; // as it goes on the wire
    if (batch.length > 0 && size + cost >= HISTORY_BATCH_BYTES) {
      yield batch;
      batch = [];
      size = ENVELOPE_BYTES;
    }
    batch.push(message);
    size += cost;
  }
  if (batch.length > 0) yield batch;
}

/** `messages` in order, in batches that each fit one data-channel frame. */
export function historyBatches(messages: readonly ChatMessage[]): ChatMessage[][] {
  return [...batchesOf(messages)];
}

function* reversedOf<T>(items: readonly T[]): Generator<T> {
  for (let i = items.length - 1; i >= 0; i -= 1) yield items[i];
}

/** `messages` (in log order) in batches cut from the newest back, as they are asked for: the
 *  newest batch first, each batch in log order and fitting one data-channel frame. Lazy, so an
 *  answer's first batch goes without sizing the whole history first. */
export function* newestFirst(messages: readonly ChatMessage[]): Generator<ChatMessage[]> {
  for (const batch of batchesOf(reversedOf(messages))) yield batch.reverse();
}

/** All of newestFirst at once. */
export function newestFirstBatches(messages: readonly ChatMessage[]): ChatMessage[][] {
  return [...newestFirst(messages)];
}

/** The rest of an answer: its next batch, and the batches after it, cut when asked. */
class Backlog {
  private upcoming: ChatMessage[] | undefined;
  constructor(private readonly rest: Iterator<ChatMessage[]>) {
    this.upcoming = this.take();
  }
  private take(): ChatMessage[] | undefined {
    const next = this.rest.next();
    return next.done === true ? undefined : next.value;
  }
  get empty(): boolean {
    return this.upcoming === undefined;
  }
  shift(): ChatMessage[] | undefined {
    const batch = this.upcoming;
    if (batch !== undefined) this.upcoming = this.take();
    return batch;
  }
}

/** Feed it links opening and closing, chat frames and ticks; send what it returns.
 *  `maxMessageBytes` is the room's limit (null: no limit); `now` starts the repair-round
 *  clock. Call tick() at nextDeadline() (or later). */
export class RoomSync {
  /** Peers with an open link, in the order they opened. */
  private readonly open = new Set<string>();
  private readonly answeredAt = new Map<string, number>();
  private readonly pending = new Map<string, { have: Record<string, unknown>; beyond: unknown }>();
  /** Per peer, the history batches of its answer still to send, next first. */
  private readonly backlog = new Map<string, Backlog>();
  private nextRepair: number;
  /** Per peer, the highest of our own seqs it told us it holds. */
  readonly confirmed = new Map<string, number>();

  constructor(
    readonly log: MessageLog,
    readonly maxMessageBytes: number | null,
    now: number,
    /** ms between repair rounds (the session's `repair_interval`). */
    readonly repairMs: number = ANTI_ENTROPY_MS,
  ) {
    this.nextRepair = now + repairMs;
  }

  get openPeers(): string[] {
    return [...this.open];
  }

  /** A link to `peer` opened: start the history exchange on it. */
  onLinkOpen(peer: string, _now: number): SyncOutput {
    // An answer's backlog is kept: the peer's sync can be handled before its link's open event.
    const backlog = this.backlog.get(peer);
    this.forgetLink(peer);
    if (backlog !== undefined) this.backlog.set(peer, backlog);
    this.open.add(peer);
    return { sends: [this.syncFrame(peer)], events: [] };
  }

  /** The link to `peer` is gone; its waiting sync is dropped. */
  onLinkClosed(peer: string): SyncOutput {
    this.forgetLink(peer);
    return output();
  }

  /** Our own new `message`: to every open link. */
  publish(message: ChatMessage): SyncOutput {
    return { sends: [...this.open].map((to) => ({ to, frame: { type: ChatFrameType.MESSAGE, message } })), events: [] };
  }

  /** A chat frame from `peer` (server-bound identity `user`, needed for messages). */
  onFrame(peer: string, frame: Record<string, unknown>, user: Identity | null, now: number): SyncOutput {
    const out = output();
    const kind = frame.type;
    if (kind === ChatFrameType.SYNC) {
      this.onSync(peer, frame.have, frame.beyond, now, out);
    } else if (kind === ChatFrameType.MESSAGE || kind === ChatFrameType.HISTORY) {
      if (user === null) out.events.push({ type: "invalid", peer, frame: kind, reason: "the sender's identity is unknown" });
      else if (kind === ChatFrameType.MESSAGE) this.onMessage(peer, frame.message, user, out);
      else this.onHistory(peer, frame.messages, user, out);
    } else {
      out.events.push({ type: "invalid", peer, frame: String(kind), reason: "not a chat frame type" });
    }
    return out;
  }

  /** Entries from an export file (already checked for signatures, in signed rooms). */
  importHistory(raw: readonly unknown[]): SyncOutput {
    const out = output();
    const fresh = raw.filter((m) => !(isRecord(m) && typeof m.id === "string" && this.log.has(m.id)));
    this.receive("", fresh, undefined, out);
    return out;
  }

  /** Answer syncs whose wait is over; run a repair round when one is due. */
  tick(now: number): SyncOutput {
    const out = output();
    for (const [peer, { have, beyond }] of [...this.pending]) {
      if (now - (this.answeredAt.get(peer) ?? 0) >= SYNC_ANSWER_INTERVAL_MS) {
        this.pending.delete(peer);
        this.answer(peer, have, beyond, now, out);
      }
    }
    if (now >= this.nextRepair) {
      this.nextRepair = now + this.repairMs;
      for (const peer of this.open) out.sends.push(this.syncFrame(peer));
      out.events.push({ type: "repair" });
    }
    return out;
  }

  /** The next batch of `peer`'s answer (call when its link has room), if any is left. */
  drain(peer: string): SyncOutput {
    const out = output();
    const batches = this.backlog.get(peer);
    const next = batches?.shift();
    if (batches !== undefined && batches.empty) this.backlog.delete(peer);
    if (next !== undefined) out.sends.push({ to: peer, frame: { type: ChatFrameType.HISTORY, messages: next } });
    return out;
  }

  /** Peers whose answer still has batches to send. */
  backlogged(): string[] {
    return [...this.backlog.keys()];
  }

  /** When tick() next has something to do. */
  nextDeadline(): number {
    const waits = [...this.pending.keys()].map((p) => (this.answeredAt.get(p) ?? 0) + SYNC_ANSWER_INTERVAL_MS);
    return Math.min(this.nextRepair, ...waits);
  }

  /** How many syncs wait for their answer. */
  waiting(): number {
    return this.pending.size;
  }

  // --- internals ---------------------------------------------------------------------------

  private forgetLink(peer: string): void {
    this.open.delete(peer);
    this.answeredAt.delete(peer);
    this.pending.delete(peer);
    this.backlog.delete(peer);
  }

  private syncFrame(peer: string): Send {
    const beyond = this.log.beyond(peer);
    const frame: ChatFrame = Object.keys(beyond).length > 0
      ? { type: ChatFrameType.SYNC, have: this.log.have(peer), beyond }
      : { type: ChatFrameType.SYNC, have: this.log.have(peer) };
    return { to: peer, frame };
  }

  private tooBig(raw: unknown): boolean {
    const text = isRecord(raw) ? raw.text : undefined;
    return typeof text === "string" && this.maxMessageBytes !== null && utf8Length(text) > this.maxMessageBytes;
  }

  private onMessage(peer: string, raw: unknown, user: Identity, out: SyncOutput): void {
    if (this.tooBig(raw)) {
      out.events.push({ type: "too_big", peer, count: 1 });
      return;
    }
    let added: ChatMessage | null;
    try {
      added = this.log.receiveDirect(peer, user, raw);
    } catch (error) {
      if (!(error instanceof InvalidMessage)) throw error;
      out.events.push({ type: "invalid", peer, frame: ChatFrameType.MESSAGE, reason: error.message });
      return;
    }
    if (added !== null) out.events.push({ type: "added", peer, messages: [added] });
  }

  private onHistory(peer: string, raw: unknown, user: Identity, out: SyncOutput): void {
    if (!Array.isArray(raw)) {
      out.events.push({ type: "invalid", peer, frame: ChatFrameType.HISTORY, reason: "messages is not a list" });
      return;
    }
    this.receive(peer, raw, user, out);
  }

  private receive(peer: string, raw: readonly unknown[], user: Identity | undefined, out: SyncOutput): void {
    const fitting = raw.filter((m) => !this.tooBig(m));
    if (fitting.length < raw.length) out.events.push({ type: "too_big", peer, count: raw.length - fitting.length });
    const from = user === undefined ? undefined : peer;
    const { added, rejected } = this.log.receiveHistory(fitting, from, user, new Set(this.open));
    if (added.length > 0) out.events.push({ type: "added", peer, messages: added });
    if (rejected.length > 0) out.events.push({ type: "rejected", peer, reasons: rejected.map((e) => e.message) });
  }

  private onSync(peer: string, have: unknown, beyond: unknown, now: number, out: SyncOutput): void {
    if (!isRecord(have)) {
      out.events.push({ type: "invalid", peer, frame: ChatFrameType.SYNC, reason: "have is not an object" });
      return;
    }
    const mine = have[this.log.peerId];
    if (typeof mine === "number" && Number.isInteger(mine) && mine > (this.confirmed.get(peer) ?? 0)) {
      this.confirmed.set(peer, mine);
      out.events.push({ type: "confirmed", peer, seq: mine });
    }
    const last = this.answeredAt.get(peer);
    if (last !== undefined && now - last < SYNC_ANSWER_INTERVAL_MS) {
      this.pending.set(peer, { have, beyond });
      return;
    }
    this.answer(peer, have, beyond, now, out);
  }

  private answer(peer: string, have: Record<string, unknown>, beyond: unknown, now: number, out: SyncOutput): void {
    this.answeredAt.set(peer, now);
    // Never send a peer its own messages back: it is their only source (msglog rule).
    const missing = this.log.missingFor(have, beyond).filter((m) => m.author !== peer);
    const batches = new Backlog(newestFirst(missing));
    const first = batches.shift();
    if (first !== undefined) out.sends.push({ to: peer, frame: { type: ChatFrameType.HISTORY, messages: first } });
    if (!batches.empty) this.backlog.set(peer, batches);
    else this.backlog.delete(peer);
  }
}
