// The chat message log (docs/protocol.md §4): Lamport clock, total order, dedupe, sync vectors.
// Pure: no I/O, no timers; ChatProxy adapts it to data channels and storage.

import { type ChatMessage, type Identity, isChatMessage, messageId } from "./protocol";

/** Per author, the highest contiguous `seq` held (1..n all present). */
export type HaveVector = Record<string, number>;

/** Total order of the log: by (clock, author), then seq for a peer that reuses a clock. */
export function compareMessages(a: ChatMessage, b: ChatMessage): number {
  if (a.clock !== b.clock) return a.clock - b.clock;
  if (a.author !== b.author) return a.author < b.author ? -1 : 1;
  return a.seq - b.seq;
}

export class MessageLog {
  private readonly byId = new Map<string, ChatMessage>();
  private readonly ordered: ChatMessage[] = [];
  private readonly seqsByAuthor = new Map<string, Set<number>>();
  private readonly contiguous = new Map<string, number>();
  private readonly maxSeq = new Map<string, number>();
  private maxClock = 0;

  get size(): number {
    return this.ordered.length;
  }

  get clock(): number {
    return this.maxClock;
  }

  /** Messages in log order. The array is owned by the log: do not mutate it. */
  messages(): readonly ChatMessage[] {
    return this.ordered;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Create (and add) a message authored by `author`, the local peer. */
  compose(author: string, user: Identity, text: string, time: number): ChatMessage {
    const seq = (this.maxSeq.get(author) ?? 0) + 1;
    const message: ChatMessage = {
      id: messageId(author, seq),
      author,
      seq,
      clock: this.maxClock + 1,
      time,
      text,
      user,
    };
    this.insert(message);
    return message;
  }

  /**
   * Add a message relayed from history or storage, trusting its `author` and `user`.
   * Returns the stored message, or null if it is malformed or already known.
   */
  receive(candidate: unknown): ChatMessage | null {
    if (!isChatMessage(candidate)) return null;
    if (candidate.id !== messageId(candidate.author, candidate.seq)) return null;
    if (this.byId.has(candidate.id)) return null;
    const message: ChatMessage = {
      id: candidate.id,
      author: candidate.author,
      seq: candidate.seq,
      clock: candidate.clock,
      time: candidate.time,
      text: candidate.text,
      user: candidate.user,
    };
    this.insert(message);
    return message;
  }

  /**
   * Add a message that arrived on a direct connection: whatever it claims, its author is
   * the connection's peer id and its user the identity the server bound to that peer.
   */
  receiveDirect(candidate: unknown, peerId: string, user: Identity): ChatMessage | null {
    if (typeof candidate !== "object" || candidate === null) return null;
    const claimed = candidate as Record<string, unknown>;
    const seq = claimed.seq;
    if (typeof seq !== "number") return null;
    return this.receive({ ...claimed, author: peerId, id: messageId(peerId, seq), user });
  }

  /** Per author, the highest contiguous seq this log holds. */
  have(): HaveVector {
    const vector: HaveVector = {};
    for (const [author, seq] of this.contiguous) if (seq > 0) vector[author] = seq;
    return vector;
  }

  /** Every message a peer reporting `have` lacks, in log order. */
  missingFor(have: unknown): ChatMessage[] {
    const theirs = typeof have === "object" && have !== null ? (have as Record<string, unknown>) : {};
    return this.ordered.filter((message) => {
      const known = theirs[message.author];
      return !(typeof known === "number" && message.seq <= known);
    });
  }

  private insert(message: ChatMessage): void {
    this.byId.set(message.id, message);
    this.maxClock = Math.max(this.maxClock, message.clock);
    let held = this.seqsByAuthor.get(message.author);
    if (held === undefined) {
      held = new Set();
      this.seqsByAuthor.set(message.author, held);
    }
    held.add(message.seq);
    this.maxSeq.set(message.author, Math.max(this.maxSeq.get(message.author) ?? 0, message.seq));
    let top = this.contiguous.get(message.author) ?? 0;
    while (held.has(top + 1)) top += 1;
    this.contiguous.set(message.author, top);
    // Appends are the common case (live chat); otherwise binary-search the slot.
    const last = this.ordered[this.ordered.length - 1];
    if (last === undefined || compareMessages(last, message) < 0) {
      this.ordered.push(message);
      return;
    }
    let lo = 0;
    let hi = this.ordered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareMessages(this.ordered[mid], message) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.ordered.splice(lo, 0, message);
  }
}
