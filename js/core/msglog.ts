// The chat message log of docs/protocol.md §4, mirroring src/nbchat/core/msglog.py rule for rule.
// Pure: no I/O, no timers. tests/fixtures/msglog_cases.json pins both languages together.

import { type ChatMessage, type Identity, PEER_ID_RE, messageId } from "../protocol";
import { type FileMeta, cleanFileMeta } from "./files";
import { type MimeBundle, cleanMime } from "./rich";

/** Per author, the highest seq held contiguously from 1 (authors at 0 omitted). */
export type HaveVector = Record<string, number>;
/** Per author, the seqs held past its `have` count, as `[first, last]` ranges (a sync's `beyond`). */
export type BeyondRanges = Record<string, [number, number][]>;

/** At most this many `[first, last]` ranges in a sync's `beyond`, made or read. */
export const MAX_BEYOND_RANGES = 256;

/**
 * A received clock may be at most this far beyond the highest we have seen. Honest clocks grow
 * by one per message; without a bound, one message with clock 2**53 - 1 would leave every peer
 * unable to compose a valid message again.
 */
export const MAX_CLOCK_STEP = 2 ** 24;

/**
 * The last millisecond of year 9999 UTC: the latest `time` both a JavaScript Date and a Python
 * datetime can show (a later one made the widget's rendering throw).
 */
export const MAX_TIME = 253_402_300_799_999;

/** The `kind` of an amendment entry (js/core/edits.ts); a message has none. */
export const AMENDMENT_KINDS = ["edit", "delete", "react"] as const;
/** The `kind` of the room's off-the-record switch (`on`: back on the record); no target. */
export const RECORD_KIND = "record";
/** A message id, `author:seq`, as an amendment or a reply names it. */
export const MESSAGE_ID_RE = /^[A-Za-z0-9_-]{1,64}:[1-9][0-9]{0,15}$/;
/** The largest reaction emoji in UTF-8 bytes (a family emoji with skin tones is 41). */
export const MAX_EMOJI_BYTES = 64;
const CONTROL = /[\x00-\x20\x7f]/;
/** An Ed25519 signature in base64url (86 characters); a little slack, nothing more. */
export const SIG_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** A SHA-256 digest in base64url (43 characters): an entry's `prev`. */
export const PREV_RE = /^[A-Za-z0-9_-]{43}$/;

/** A received message that breaks the wire format; the caller logs and drops it. */
export class InvalidMessage extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asInt(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) ? value : null;
}

/**
 * A sync's `beyond`, untrusted: per author (a valid peer id, in code-unit order) its ranges
 * merged and sorted, as [firsts, lasts]; malformed parts and ranges past MAX_BEYOND_RANGES are
 * left out (counted as not held).
 */
function heldRanges(beyond: unknown): Map<string, [number[], number[]]> {
  const held = new Map<string, [number[], number[]]>();
  if (!isRecord(beyond)) return held;
  let budget = MAX_BEYOND_RANGES;
  for (const author of Object.keys(beyond).filter((k) => PEER_ID_RE.test(k)).sort()) {
    const spans = beyond[author];
    if (budget === 0) break;
    if (!Array.isArray(spans)) continue;
    const pairs: [number, number][] = [];
    for (const span of spans.slice(0, budget)) {
      if (!Array.isArray(span) || span.length !== 2) continue;
      const first = asInt(span[0]);
      const last = asInt(span[1]);
      if (first === null || last === null || !(1 <= first && first <= last && last <= Number.MAX_SAFE_INTEGER)) continue;
      pairs.push([first, last]);
    }
    budget -= Math.min(spans.length, budget);
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const firsts: number[] = [];
    const lasts: number[] = [];
    for (const [first, last] of pairs) {
      if (lasts.length > 0 && first <= lasts[lasts.length - 1] + 1) {
        lasts[lasts.length - 1] = Math.max(lasts[lasts.length - 1], last);
      } else {
        firsts.push(first);
        lasts.push(last);
      }
    }
    if (firsts.length > 0) held.set(author, [firsts, lasts]);
  }
  return held;
}

/** Whether `seq` lies in one of the merged, sorted ranges `[firsts, lasts]`. */
function inRanges([firsts, lasts]: [number[], number[]], seq: number): boolean {
  let low = 0;
  let high = firsts.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (firsts[mid] <= seq) low = mid + 1;
    else high = mid;
  }
  return low > 0 && lasts[low - 1] >= seq;
}

function optionalString(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** A clean IDENTITY from untrusted JSON, keeping only the known keys. */
export function normalizeIdentity(value: unknown): Identity {
  if (!isRecord(value) || typeof value.username !== "string") {
    throw new InvalidMessage("user must be an object with a string username");
  }
  const username = value.username;
  return {
    username,
    name: typeof value.name === "string" ? value.name : username,
    display_name: typeof value.display_name === "string" ? value.display_name : username,
    initials: optionalString(value.initials),
    color: optionalString(value.color),
    avatar_url: optionalString(value.avatar_url),
  };
}

/** Identities already made, by their fields: a relayed or restored history of 10,000
 *  messages shares one object per author instead of holding one per message. */
const IDENTITIES_HELD = 1024;
const IDENTITY_KEYS = ["username", "name", "display_name", "initials", "color", "avatar_url"] as const;
const identities = new Map<string, Identity>();

/** `identity`, or an equal one made earlier (identities are never changed once made). */
function shared(identity: Identity): Identity {
  // Each field with its length first: no two different identities have the same key.
  let key = "";
  for (const field of IDENTITY_KEYS) {
    const value = identity[field];
    key += value === null ? "-" : `${value.length}:${value}`;
  }
  const held = identities.get(key);
  if (held !== undefined) return held;
  if (identities.size >= IDENTITIES_HELD) identities.clear(); // a bound, not a policy
  identities.set(key, identity);
  return identity;
}

/** Build a log entry from untrusted JSON; `author` (and `user`) are the trusted parts. */
function validated(raw: unknown, author: string, user: Identity | null): ChatMessage {
  if (!isRecord(raw)) throw new InvalidMessage("message must be an object");
  if (!PEER_ID_RE.test(author)) throw new InvalidMessage(`invalid author ${JSON.stringify(author)}`);
  const seq = asInt(raw.seq);
  const clock = asInt(raw.clock);
  const { time, text } = raw;
  if (seq === null || seq < 1 || seq > Number.MAX_SAFE_INTEGER) {
    throw new InvalidMessage(`invalid seq ${String(raw.seq)}`);
  }
  if (clock === null || clock < 1 || clock > Number.MAX_SAFE_INTEGER) {
    throw new InvalidMessage(`invalid clock ${String(raw.clock)}`);
  }
  if (typeof time !== "number" || !Number.isFinite(time) || time < 0 || time > MAX_TIME) {
    throw new InvalidMessage(`invalid time ${String(time)}`);
  }
  if (typeof text !== "string") throw new InvalidMessage("text must be a string");
  const sig = checkedSig(raw.sig);
  const id = messageId(author, seq);
  const who = user ?? shared(normalizeIdentity(raw.user));
  // A signed entry's `sig` and a chained one's `prev` in the literal: added afterwards they
  // would go to a separate property array (~22 bytes an entry, 10,000 in a big room).
  const prev = checkedPrev(raw.prev);
  const message: ChatMessage =
    sig === undefined
      ? { id, author, seq, clock, time, text, user: who }
      : prev === undefined
        ? { id, author, seq, clock, time, text, user: who, sig }
        : { id, author, seq, clock, time, text, user: who, sig, prev };
  validateExtensions(raw, message);
  return withExtras(message, raw.mime, raw.file);
}

/** `message` with its rich parts, each kept only if valid (the text stays regardless). */
function withExtras(message: ChatMessage, mime: unknown, file: unknown): ChatMessage {
  if (mime !== undefined && mime !== null) {
    const clean = cleanMime(mime);
    if (clean !== null) message.mime = clean;
  }
  if (file !== undefined && file !== null) {
    const meta = cleanFileMeta(file);
    if (meta !== null) message.file = meta;
  }
  return message;
}

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function messageIdField(raw: Record<string, unknown>, key: string): string {
  const value = raw[key];
  if (typeof value !== "string" || !MESSAGE_ID_RE.test(value)) throw new InvalidMessage(`${key} must be a message id`);
  return value;
}

const utf8 = new TextEncoder();

/** An entry's `sig` if it has one (absent or null: undefined); throws if it is not base64url. */
function checkedSig(sig: unknown): string | undefined {
  if (sig === undefined || sig === null) return undefined;
  if (typeof sig !== "string" || !SIG_RE.test(sig)) throw new InvalidMessage("sig must be base64url");
  return sig;
}

/** An entry's `prev` if it has one (absent or null: undefined); throws if it is not a digest. */
function checkedPrev(prev: unknown): string | undefined {
  if (prev === undefined || prev === null) return undefined;
  if (typeof prev !== "string" || !PREV_RE.test(prev)) throw new InvalidMessage("prev must be a base64url SHA-256 digest");
  return prev;
}

/** Copy the optional fields of a reply or an amendment onto `message`, checked. */
function validateExtensions(raw: Record<string, unknown>, message: ChatMessage): void {
  const { kind } = raw;
  const sig = checkedSig(raw.sig);
  if (sig !== undefined && message.sig !== sig) message.sig = sig;
  const prev = checkedPrev(raw.prev);
  if (prev !== undefined && message.prev !== prev) message.prev = prev;
  const offRecord = raw.off_record;
  if (offRecord !== undefined && offRecord !== null) {
    if (offRecord !== true || kind === RECORD_KIND) {
      throw new InvalidMessage("off_record must be true or absent (and a switch has none)");
    }
    message.off_record = true;
  }
  if (kind === undefined || kind === null) {
    if (raw.reply_to !== undefined && raw.reply_to !== null) message.reply_to = messageIdField(raw, "reply_to");
    return;
  }
  if (kind === RECORD_KIND) {
    const { on } = raw;
    if (typeof on !== "boolean") throw new InvalidMessage("a record switch needs on: true or false");
    if (raw.target !== undefined && raw.target !== null) throw new InvalidMessage("a record switch has no target");
    message.kind = kind;
    message.on = on;
    return;
  }
  if (!(AMENDMENT_KINDS as readonly unknown[]).includes(kind)) {
    throw new InvalidMessage(`unknown kind ${JSON.stringify(kind)}`);
  }
  message.kind = kind as string;
  message.target = messageIdField(raw, "target");
  if (kind === "react") {
    const { emoji, on } = raw;
    if (typeof emoji !== "string" || emoji === "" || utf8.encode(emoji).length > MAX_EMOJI_BYTES || CONTROL.test(emoji)) {
      throw new InvalidMessage("emoji must be 1 to 64 bytes without spaces or controls");
    }
    if (typeof on !== "boolean") throw new InvalidMessage("on must be true or false");
    message.emoji = emoji;
    message.on = on;
  }
}

/** Whether two copies of one id say the same thing (an honest relay does). */
const CONTENT_KEYS = ["clock", "time", "text", "kind", "target", "reply_to", "emoji", "on", "off_record", "sig", "prev"] as const;

function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  return (
    CONTENT_KEYS.every((key) => a[key] === b[key]) &&
    sameJson(a.mime, b.mime) &&
    sameJson(a.file, b.file) &&
    IDENTITY_KEYS.every((key) => a.user[key] === b.user[key])
  );
}

/** Total order of the log: (clock, author by code unit, seq). */
export function compareMessages(a: ChatMessage, b: ChatMessage): number {
  if (a.clock !== b.clock) return a.clock - b.clock;
  if (a.author !== b.author) return a.author < b.author ? -1 : 1;
  return a.seq - b.seq;
}

export interface HistoryResult {
  added: ChatMessage[];
  rejected: InvalidMessage[];
}

/**
 * A set of one author's seqs, kept as the count held contiguously from 1 and the others: a
 * whole history is one number, not a hash table of 10,000 (~16 bytes each).
 */
class SeqSet {
  /** Every seq from 1 to this one is held. */
  upto = 0;
  /** The seqs held past `upto + 1`. */
  private readonly past = new Set<number>();

  has(seq: number): boolean {
    return (seq >= 1 && seq <= this.upto) || this.past.has(seq);
  }

  add(seq: number): void {
    if (this.has(seq)) return;
    if (seq !== this.upto + 1) {
      this.past.add(seq);
      return;
    }
    this.upto = seq;
    while (this.past.delete(this.upto + 1)) this.upto += 1;
  }

  /** The seqs held above `floor`, in no particular order. */
  above(floor: number): number[] {
    const held: number[] = [];
    for (let seq = Math.max(floor, 0) + 1; seq <= this.upto; seq += 1) held.push(seq);
    for (const seq of this.past) if (seq > floor) held.push(seq);
    return held;
  }
}

/** One peer's view of a room's messages, ordered identically on every peer. */
export class MessageLog {
  private ordered: ChatMessage[] = [];
  /** Messages that go before the end, not merged into `ordered` yet: a newest-first history
   *  inserts every batch before everything held, and merging once per read (a render) costs
   *  O(n + m log m) instead of a splice of O(n) per message. */
  private early: ChatMessage[] = [];
  private readonly byId = new Map<string, ChatMessage>();
  private readonly seqs = new Map<string, SeqSet>();
  private readonly maxSeq = new Map<string, number>();
  private readonly contiguous = new Map<string, number>();
  /** Ids whose copy came from their author (composed here, a message frame, its own history). */
  private readonly firstHand = new Map<string, SeqSet>();
  private maxClock = 0;

  constructor(
    readonly peerId: string,
    readonly user: Identity,
  ) {
    if (!PEER_ID_RE.test(peerId)) throw new Error(`invalid peer id ${JSON.stringify(peerId)}`);
  }

  /** The highest Lamport clock seen so far. */
  get clock(): number {
    return this.maxClock;
  }

  get size(): number {
    return this.ordered.length + this.early.length;
  }

  /** All messages in order. Owned by the log: read, never mutate. */
  get messages(): readonly ChatMessage[] {
    this.settle();
    return this.ordered;
  }

  /** Merge the early arrivals into the order. */
  private settle(): void {
    const early = this.early;
    if (early.length === 0) return;
    this.early = [];
    early.sort(compareMessages);
    const held = this.ordered;
    const merged: ChatMessage[] = new Array(held.length + early.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < held.length && j < early.length) {
      merged[k++] = compareMessages(held[i], early[j]) <= 0 ? held[i++] : early[j++];
    }
    while (i < held.length) merged[k++] = held[i++];
    while (j < early.length) merged[k++] = early[j++];
    this.ordered = merged;
  }

  /**
   * Position of a message in the order (for views inserting a late arrival); throws a
   * RangeError for an id the log does not hold.
   */
  index(id: string): number {
    const message = this.byId.get(id);
    if (message === undefined) throw new RangeError(`no message ${id}`);
    this.settle();
    let low = 0;
    let high = this.ordered.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (compareMessages(this.ordered[mid], message) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): ChatMessage | undefined {
    return this.byId.get(id);
  }

  /**
   * Create, add and return our own next entry (`mime` and `file` as received ones are kept:
   * invalid parts are left out). `extensions` are a reply's `reply_to` or an amendment's
   * `kind`, `target`, `emoji` and `on` (js/core/edits.ts); throws InvalidMessage if they
   * break the format.
   */
  compose(
    text: string,
    time: number,
    mime?: MimeBundle | null,
    file?: FileMeta | null,
    extensions: Record<string, unknown> = {},
  ): ChatMessage {
    const seq = (this.maxSeq.get(this.peerId) ?? 0) + 1;
    const message: ChatMessage = {
      id: messageId(this.peerId, seq),
      author: this.peerId,
      seq,
      clock: this.maxClock + 1,
      time,
      text,
      user: this.user,
    };
    validateExtensions(extensions, message);
    withExtras(message, mime, file);
    this.add(message, true);
    return message;
  }

  /**
   * Add a `message` frame's MESSAGE from connection peer `fromPeer`, stamped with that
   * peer id and its bound identity. Returns it if added (or replacing a relayed copy), null
   * if the log already held it; throws InvalidMessage.
   */
  receiveDirect(fromPeer: string, user: Identity, raw: unknown): ChatMessage | null {
    return this.add(this.plausible(validated(raw, fromPeer, user)), true);
  }

  /**
   * Add a `history` batch from `fromPeer`: others' messages as claimed, the sender's own
   * (first-hand) with its bound identity. `connected` are the peers with an open direct
   * connection to us: while connected, an author alone is a source for its messages.
   */
  receiveHistory(
    messages: readonly unknown[],
    fromPeer?: string,
    user?: Identity,
    connected: ReadonlySet<string> = new Set(),
  ): HistoryResult {
    const result: HistoryResult = { added: [], rejected: [] };
    for (const raw of messages) {
      try {
        const author = isRecord(raw) ? raw.author : undefined;
        if (typeof author !== "string") throw new InvalidMessage("author must be a string");
        if (author === this.peerId) throw new InvalidMessage("history may not carry our own messages");
        const firstHand = fromPeer !== undefined && user !== undefined && author === fromPeer;
        if (!firstHand && connected.has(author)) {
          throw new InvalidMessage(`${author} is connected: it alone relays its messages`);
        }
        const added = this.add(this.plausible(validated(raw, author, firstHand ? user : null)), firstHand);
        if (added !== null) result.added.push(added);
      } catch (error) {
        if (!(error instanceof InvalidMessage)) throw error;
        result.rejected.push(error);
      }
    }
    return result;
  }

  /** Reload messages this browser stored earlier (trusted as stored; malformed ones skipped). */
  restore(messages: readonly unknown[]): number {
    let restored = 0;
    for (const raw of messages) {
      const author = isRecord(raw) ? raw.author : undefined;
      if (typeof author !== "string") continue;
      try {
        // Only our own are first-hand: a stored relay may have been a forgery.
        if (this.add(this.plausible(validated(raw, author, null)), author === this.peerId) !== null) restored += 1;
      } catch (error) {
        if (!(error instanceof InvalidMessage)) throw error;
      }
    }
    return restored;
  }

  private plausible(message: ChatMessage): ChatMessage {
    if (message.clock > this.maxClock + MAX_CLOCK_STEP) {
      throw new InvalidMessage(`clock ${message.clock} is implausibly far ahead`);
    }
    return message;
  }

  /**
   * With `forPeer`, that peer's own count covers only first-hand copies: the sync for it,
   * so it sends again whatever of its own we learned second-hand.
   */
  have(forPeer?: string): HaveVector {
    const have: HaveVector = Object.fromEntries(this.contiguous);
    if (forPeer !== undefined && Object.prototype.hasOwnProperty.call(have, forPeer)) {
      const held = this.firstHand.get(forPeer)?.upto ?? 0;
      if (held > 0) have[forPeer] = held;
      else delete have[forPeer];
    }
    return have;
  }

  /**
   * Per author, the seqs held past `have(forPeer)`'s count, as `[first, last]` ranges from the
   * lowest (authors with none omitted; at most MAX_BEYOND_RANGES in all). With `forPeer`, that
   * peer's own ranges cover only first-hand copies, as in `have`.
   */
  beyond(forPeer?: string): BeyondRanges {
    const beyond: BeyondRanges = {};
    let budget = MAX_BEYOND_RANGES;
    for (const author of [...this.seqs.keys()].sort()) {
      const contiguous = this.contiguous.get(author) ?? 0;
      let past: number[];
      if (author === forPeer) {
        const own = this.firstHand.get(author);
        const base = own?.upto ?? 0;
        if ((this.maxSeq.get(author) ?? 0) === base) continue;
        past = (this.seqs.get(author) as SeqSet).above(base).filter((s) => own !== undefined && own.has(s));
      } else {
        if ((this.maxSeq.get(author) ?? 0) === contiguous) continue; // no gap: the common case
        past = (this.seqs.get(author) as SeqSet).above(contiguous);
      }
      past.sort((a, b) => a - b);
      const ranges: [number, number][] = [];
      for (const seq of past) {
        const last = ranges[ranges.length - 1];
        if (last !== undefined && last[1] + 1 === seq) last[1] = seq;
        else if (ranges.length < budget) ranges.push([seq, seq]);
        else break;
      }
      if (ranges.length > 0) {
        beyond[author] = ranges;
        budget -= ranges.length;
        if (budget === 0) break;
      }
    }
    return beyond;
  }

  /** Every message the holder of `have` (and `beyond`) lacks, in log order; junk in either
   *  counts as nothing held. */
  missingFor(have: unknown, beyond?: unknown): ChatMessage[] {
    const theirs = isRecord(have) ? have : {};
    const ranges = heldRanges(beyond);
    this.settle();
    return this.ordered.filter((message) => {
      const held = Object.prototype.hasOwnProperty.call(theirs, message.author)
        ? asInt(theirs[message.author]) ?? 0
        : 0;
      if (message.seq <= held) return false;
      const spans = ranges.get(message.author);
      return spans === undefined || !inRanges(spans, message.seq);
    });
  }

  private isFirstHand(message: ChatMessage): boolean {
    return this.firstHand.get(message.author)?.has(message.seq) ?? false;
  }

  private noteFirstHand(message: ChatMessage): void {
    let own = this.firstHand.get(message.author);
    if (own === undefined) {
      own = new SeqSet();
      this.firstHand.set(message.author, own);
    }
    own.add(message.seq);
  }

  private add(message: ChatMessage, firstHand = false): ChatMessage | null {
    const existing = this.byId.get(message.id);
    if (existing !== undefined) {
      if (!firstHand || this.isFirstHand(message)) return null;
      // The author's own copy wins over a relayed one (which may be a forgery).
      this.noteFirstHand(message);
      if (sameMessage(existing, message)) return null;
      this.settle();
      this.ordered.splice(this.ordered.indexOf(existing), 1);
    } else if (firstHand) {
      this.noteFirstHand(message);
    }
    this.byId.set(message.id, message);
    const author = message.author;
    let held = this.seqs.get(author);
    if (held === undefined) {
      held = new SeqSet();
      this.seqs.set(author, held);
    }
    held.add(message.seq);
    this.maxSeq.set(author, Math.max(this.maxSeq.get(author) ?? 0, message.seq));
    if (held.upto > 0) this.contiguous.set(author, held.upto);
    this.maxClock = Math.max(this.maxClock, message.clock);
    // Appends are the common case (live chat); anything earlier waits to be merged (settle).
    const last = this.ordered[this.ordered.length - 1];
    if (last === undefined || compareMessages(last, message) <= 0) this.ordered.push(message);
    else this.early.push(message);
    return message;
  }
}
