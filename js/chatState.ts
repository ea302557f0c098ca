// What the chat shows, derived from ChatProxy's connection facts: pure, so it is tested alone.

import { type MessageState, type Reaction, Timeline } from "./core/edits";
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
  /** The conversation: messages only (no amendment entries), each as it shows now. */
  messages: readonly ShownMessage[];
  /** Every log entry in order, amendments included (what the kernel copy mirrors). */
  entries: readonly ChatMessage[];
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
  messages: readonly ShownMessage[];
  /** Every log entry (defaults to `messages`). */
  entries?: readonly ChatMessage[];
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

export function displayName(user: Identity): string {
  return user.display_name || user.name || user.username;
}

function quoteOf(state: MessageState): Quote {
  const line = state.deleted ? "message deleted" : state.text.split("\n", 1)[0];
  return { id: state.id, name: displayName(state.user), line, deleted: state.deleted };
}

/**
 * The log folded into the conversation, incrementally: each entry is fed to a Timeline once
 * (a WeakSet of entries seen), and a message's shown object is rebuilt only when its state
 * (or the state of the message it quotes) changed, so unchanged rows keep their identity and
 * React.memo skips them.
 */
export class Conversation {
  private readonly timeline = new Timeline();
  private readonly fed = new WeakSet<ChatMessage>();
  private readonly shown = new WeakMap<MessageState, { quoted: MessageState | null; message: ShownMessage }>();
  private list: ShownMessage[] = [];
  private source: readonly ChatMessage[] | null = null;
  private sourceLength = -1;
  private pending = false;

  /** The shown messages for the log's `entries` (in log order). */
  update(entries: readonly ChatMessage[]): readonly ShownMessage[] {
    for (const entry of entries) {
      if (this.fed.has(entry)) continue;
      this.fed.add(entry);
      this.timeline.add(entry);
      this.pending = true;
    }
    if (!this.pending && entries === this.source && entries.length === this.sourceLength) return this.list;
    this.pending = false;
    this.source = entries;
    this.sourceLength = entries.length;
    const list: ShownMessage[] = [];
    for (const entry of entries) {
      if (entry.kind !== undefined) continue;
      const state = this.timeline.state(entry.id);
      if (state === null) continue;
      const quoted = state.reply_to !== null ? this.timeline.state(state.reply_to) : null;
      let cached = this.shown.get(state);
      if (cached === undefined || cached.quoted !== quoted || cached.message.file !== entry.file) {
        const message: ShownMessage = {
          ...entry,
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
      list.push(cached.message);
    }
    this.list = list;
    return list;
  }

  /** What message `id` shows now (null for an amendment or an unknown id). */
  state(id: string): MessageState | null {
    return this.timeline.state(id);
  }
}
