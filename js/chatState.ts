// What the chat shows, derived from ChatProxy's connection facts: pure, so it is tested alone.

import { type MessageState, type Reaction, Timeline } from "./core/edits";
import { RECORD_KIND, compareMessages } from "./core/msglog";
import type { ChatMessage, Identity, Presence } from "./protocol";
import type { LocalCopyStats } from "./storage";

export type Phase = "connecting" | "online" | "offline";

export interface ChatState {
  phase: Phase;
  /** One line for the status bar: "Connecting…", "Connected to 2 peers", "Offline — …". */
  status: string;
  /** Why sending is impossible right now, or null when it is possible. */
  cannotSend: string | null;
  selfId: string | null;
  self: Identity | null;
  /** Everyone present in the room (ourselves included), in arrival order. */
  users: readonly Presence[];
  /** Whether `users` comes from the server's roster (not just ourselves, before it arrives). */
  rosterKnown: boolean;
  /** The conversation: messages (each as it shows now) and the room's off-the-record
   *  switches (`kind` "record", shown as a line), no other amendment entries. */
  messages: readonly ListedMessage[];
  /** Every log entry in order that is kept (not off the record), amendments included:
   *  what the kernel copy mirrors and a JSON export holds. */
  entries: readonly ChatMessage[];
  /** While the room is off the record: who turned it off and when; null on the record. */
  offRecord?: OffRecord | null;
  /** "Ana is typing…", or "" for nobody. */
  typing: string;
  maxMessageBytes: number;
  /** A notice for the reader (the TURN relay fails us, someone floods the room), or null. */
  notice: string | null;
  /** Who can join the room, in words, once the server said (else null). */
  audience: string | null;
  /** Whether signaling is sealed with a room passphrase (the header shows a lock). */
  sealed?: boolean;
  /** What this computer keeps of the room (IndexedDB), or null without a local copy. */
  localCopy?: LocalCopyStats | null;
}

/** A peer whose frames we are dropping because it sends too fast. */
export interface Flood {
  name: string;
  dropped: number;
}

/** The room's off-the-record state, for the banner. */
export interface OffRecord {
  /** Who turned the record off (display name). */
  by: string;
  /** When (ms since the epoch). */
  since: number;
}

export interface ConnectionFacts {
  phase: Phase;
  /** Open data connections. */
  openLinks: number;
  signalingUp: boolean;
  /** Why we are offline (or why the server is unreachable), with the retry delay. */
  reason: string;
  selfId: string | null;
  self: Identity | null;
  present: readonly Presence[];
  rosterKnown: boolean;
  messages: readonly ListedMessage[];
  /** Every kept log entry (defaults to `messages`). */
  entries?: readonly ChatMessage[];
  offRecord?: OffRecord | null;
  typing?: string;
  maxMessageBytes: number;
  flooding: readonly Flood[];
  /** Why the TURN relay gives us no relayed address ("the TURN relay refused…"), or null. */
  relayProblem: string | null;
  audience?: string | null;
  sealed?: boolean;
  /** Peers whose signaling failed the passphrase check, by name. */
  refused?: readonly string[];
  localCopy?: LocalCopyStats | null;
}

/** Someone's signaling failed the room passphrase check; we cannot tell whose passphrase is wrong. */
export function refusedNotice(refused: readonly string[], sealed: boolean): string | null {
  if (refused.length === 0) return null;
  const who = refused.length === 1 ? refused[0] : `${refused.slice(0, -1).join(", ")} and ${refused[refused.length - 1]}`;
  return sealed
    ? `Could not verify the connection with ${who}: someone without this room's passphrase tried to connect (wrong passphrase?).`
    : `${who} uses a room passphrase and you have none: no connection.`;
}

/** "Ann is sending too fast: 120 messages dropped." (names joined for several). */
export function floodNotice(flooding: readonly Flood[]): string | null {
  if (flooding.length === 0) return null;
  const names = flooding.map((f) => f.name);
  const who =
    names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  const dropped = flooding.reduce((sum, f) => sum + f.dropped, 0);
  const verb = names.length === 1 ? "is" : "are";
  return `${who} ${verb} sending too fast: ${dropped} ${dropped === 1 ? "message" : "messages"} dropped.`;
}

export function chatState(facts: ConnectionFacts): ChatState {
  const { openLinks, selfId, self } = facts;
  // Peer-to-peer links outlive the server: with any open, we can still chat.
  const phase: Phase = facts.phase === "offline" && openLinks > 0 ? "online" : facts.phase;
  let status: string;
  let cannotSend: string | null = null;
  if (phase === "connecting") {
    status = "Connecting…";
    cannotSend = "Connecting to the chat…";
  } else if (phase === "offline") {
    status = `Offline — ${facts.reason}`;
    cannotSend = status;
  } else {
    status = `Connected to ${openLinks} ${openLinks === 1 ? "peer" : "peers"}`;
    if (!facts.signalingUp) status += ` — server unreachable, ${facts.reason}`;
  }
  if (selfId === null && cannotSend === null) cannotSend = "Connecting to the chat…";
  const users = [...facts.present];
  if (selfId !== null && self !== null && !users.some((u) => u.peer_id === selfId)) {
    users.unshift({ peer_id: selfId, user: self });
  }
  return {
    phase,
    status,
    cannotSend,
    selfId,
    self,
    users,
    rosterKnown: facts.rosterKnown,
    messages: facts.messages,
    entries: facts.entries ?? facts.messages,
    offRecord: facts.offRecord ?? null,
    typing: facts.typing ?? "",
    maxMessageBytes: facts.maxMessageBytes,
    notice:
      [facts.relayProblem, refusedNotice(facts.refused ?? [], facts.sealed ?? false), floodNotice(facts.flooding)]
        .filter((n) => n !== null)
        .join(" ") || null,
    audience: facts.audience ?? null,
    sealed: facts.sealed ?? false,
    localCopy: facts.localCopy ?? null,
  };
}

/** What a reply shows of the message it answers. */
export interface Quote {
  id: string;
  name: string;
  /** The first line of its current text ("message deleted" for a deleted one). */
  line: string;
  deleted: boolean;
}

/** What the list may show of a message: a plain entry, or a ShownMessage. */
export type ListedMessage = ChatMessage & Partial<Omit<ShownMessage, keyof ChatMessage>>;

/** A message as the list shows it: its log entry with its current text, edits, reactions. */
export interface ShownMessage extends ChatMessage {
  /** The `time` of the edit shown, null if never edited. */
  edited: number | null;
  deleted: boolean;
  reactions: readonly Reaction[];
  /** The message this one answers, if it is a reply (null if that one is not held). */
  quote: Quote | null;
}

/** What the log's line for a record switch says: "Ana took the chat off the record". */
export function recordLine(entry: ChatMessage): string {
  return `${displayName(entry.user)} ${entry.on === true ? "put the chat back on the record" : "took the chat off the record"}`;
}

export function displayName(user: Identity): string {
  return user.display_name || user.name || user.username;
}

function quoteOf(state: MessageState): Quote {
  const line = state.deleted ? "message deleted" : state.text.split("\n", 1)[0];
  return { id: state.id, name: displayName(state.user), line, deleted: state.deleted };
}

/**
 * The log folded into the conversation, incrementally. A message nobody amended and that
 * answers nothing is listed as its log entry itself (no copy, no fold); the others as a
 * ShownMessage, rebuilt only when its state (or the state of the message it quotes)
 * changed, so unchanged rows keep their identity and React.memo skips them. Entries
 * appended at the end of the log (live chat) cost only their own work; anything else
 * (history inserted in the middle) refolds the list, reusing every unchanged row.
 */
export class Conversation {
  /** Every entry fed, by id (the newest copy): an entry is fed when the Timeline holds it. */
  private readonly timeline = new Timeline();
  /** Ids that amendments name: their rows need the Timeline's fold. */
  private readonly amended = new Set<string>();
  private readonly shown = new WeakMap<MessageState, { quoted: MessageState | null; message: ShownMessage }>();
  private list: ListedMessage[] = [];
  /** Rows marked off the record whose entry is not flagged itself (a switch said so). */
  private readonly marked = new WeakMap<ChatMessage, ListedMessage>();
  /** Whether any entry fed is a switch or flagged: until then everything is kept. */
  private anyOffRecord = false;
  /** Entries fed so far, and the last answer of kept(). */
  private fedCount = 0;
  private keptCache: { fed: number; length: number; last: ChatMessage | undefined; kept: readonly ChatMessage[] } | null =
    null;
  /** The replies to each id (a row is found by its place in the log order: `rowOf`). */
  private readonly replies = new Map<string, string[]>();
  private source: readonly ChatMessage[] | null = null;
  private sourceLength = 0;
  private sourceLast: ChatMessage | undefined = undefined;

  /** The shown messages for the log's `entries` (in log order). */
  update(entries: readonly ChatMessage[]): readonly ListedMessage[] {
    const grown = entries.length - this.sourceLength;
    // Same log, same length, same last entry: nothing new. (A first-hand copy that replaces a
    // different relayed one is spliced out and added again: a new array or a new last entry.)
    if (entries === this.source && grown === 0 && entries[entries.length - 1] === this.sourceLast) return this.list;
    if (entries === this.source && grown > 0 && entries[this.sourceLength - 1] === this.sourceLast) {
      const tail = entries.slice(this.sourceLength);
      if (tail.every((entry) => !this.fed(entry))) {
        this.append(tail);
        this.remember(entries);
        return this.list;
      }
    }
    for (const entry of entries) this.feed(entry);
    const list: ListedMessage[] = [];
    this.replies.clear();
    for (const entry of entries) {
      if (entry.kind !== undefined && entry.kind !== RECORD_KIND) continue;
      if (entry.reply_to !== undefined) this.noteReply(entry);
      list.push(this.row(entry));
    }
    this.list = list;
    this.remember(entries);
    return list;
  }

  /** What message `id` shows now (null for an amendment or an unknown id). */
  state(id: string): MessageState | null {
    return this.timeline.state(id);
  }

  /** The room's latest off-the-record switch (core/edits), of the entries last updated. */
  record(): ChatMessage | null {
    return this.timeline.record();
  }

  /** Whether entry `id` is off the record: never stored, mirrored or exported. */
  offRecord(id: string): boolean {
    return this.anyOffRecord && this.timeline.offRecord(id);
  }

  /** `entries` without those off the record (the same array while there are none). */
  kept(entries: readonly ChatMessage[]): readonly ChatMessage[] {
    if (!this.anyOffRecord) return entries;
    // Renders without a new entry (presence, typing) reuse the last answer.
    const last = entries[entries.length - 1];
    const cached = this.keptCache;
    if (cached !== null && cached.fed === this.fedCount && cached.length === entries.length && cached.last === last) {
      return cached.kept;
    }
    const kept = entries.filter((entry) => !this.timeline.offRecord(entry.id));
    this.keptCache = { fed: this.fedCount, length: entries.length, last, kept };
    return kept;
  }

  private remember(entries: readonly ChatMessage[]): void {
    this.source = entries;
    this.sourceLength = entries.length;
    this.sourceLast = entries[entries.length - 1];
  }

  /** Whether this very entry was fed (and is the copy held for its id). The log never hands
   *  back a copy it replaced, so a copy fed once is never seen again once replaced. */
  private fed(entry: ChatMessage): boolean {
    return this.timeline.entry(entry.id) === entry;
  }

  private feed(entry: ChatMessage): void {
    if (this.fed(entry)) return;
    this.fedCount += 1;
    this.timeline.add(entry);
    if (entry.kind === RECORD_KIND || entry.off_record === true) this.anyOffRecord = true;
    if (entry.kind !== undefined && entry.target !== undefined) this.amended.add(entry.target);
  }

  private noteReply(entry: ChatMessage): void {
    const target = entry.reply_to as string;
    const list = this.replies.get(target);
    if (list === undefined) this.replies.set(target, [entry.id]);
    else list.push(entry.id);
  }

  /** New entries at the end of the log: append messages, refresh the rows amendments touch. */
  private append(tail: readonly ChatMessage[]): void {
    const list = this.list.slice();
    const touched = new Set<string>();
    for (const entry of tail) {
      this.feed(entry);
      if (entry.kind === undefined || entry.kind === RECORD_KIND) {
        if (entry.reply_to !== undefined) this.noteReply(entry);
        list.push(this.row(entry));
        if (this.replies.has(entry.id)) touched.add(entry.id);
      } else if (entry.target !== undefined) {
        touched.add(entry.target);
      }
    }
    for (const id of touched) {
      for (const changed of [id, ...(this.replies.get(id) ?? [])]) {
        const at = this.rowOf(list, changed);
        if (at !== null) list[at] = this.row(list[at] as ChatMessage, true);
      }
    }
    this.list = list;
  }

  /** Where message `id` is listed in `list` (in log order), or null: a binary search by the
   *  log's order of its entry (a map of 10,000 rows cost ~0.23 MB to find the few amended). */
  private rowOf(list: readonly ListedMessage[], id: string): number | null {
    const entry = this.timeline.entry(id);
    if (entry === undefined) return null;
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (compareMessages(list[mid] as ChatMessage, entry) < 0) low = mid + 1;
      else high = mid;
    }
    return low < list.length && list[low].id === id ? low : null;
  }

  /** The row for message `entry` (`listed`: a row of the list, maybe a ShownMessage already). */
  private row(entry: ChatMessage, listed = false): ListedMessage {
    if (listed) {
      const held = this.timeline.entry(entry.id);
      if (held !== undefined && held.kind === undefined) entry = held;
    }
    if (entry.kind === RECORD_KIND) return entry;
    // Off the record by a switch but not flagged by its author: a marked copy of the entry.
    const off = this.offRecord(entry.id);
    if (!this.amended.has(entry.id) && entry.reply_to === undefined) {
      if (!off || entry.off_record === true) return entry;
      let copy = this.marked.get(entry);
      if (copy === undefined) {
        copy = { ...entry, off_record: true };
        this.marked.set(entry, copy);
      }
      return copy;
    }
    const state = this.timeline.state(entry.id);
    if (state === null) return entry;
    const quoted = state.reply_to !== null ? this.timeline.state(state.reply_to) : null;
    let cached = this.shown.get(state);
    if (
      cached === undefined ||
      cached.quoted !== quoted ||
      cached.message.file !== entry.file ||
      (cached.message.off_record === true) !== off
    ) {
      const message: ShownMessage = {
        ...entry,
        ...(off ? { off_record: true } : {}),
        text: state.text,
        edited: state.edited,
        deleted: state.deleted,
        reactions: state.reactions,
        quote: quoted !== null ? quoteOf(quoted) : null,
      };
      if (state.deleted) {
        delete message.mime;
        delete message.file;
      }
      cached = { quoted, message };
      this.shown.set(state, cached);
    }
    return cached.message;
  }
}
