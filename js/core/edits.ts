// What each message shows after its edits, deletes and reactions (docs/protocol.md §4.3),
// mirroring src/nbchat/core/edits.py rule for rule; tests/fixtures/edits_cases.json pins both.
// Pure: no I/O, no timers. The rules are in the Python module's docstring, off the record
// included (tests/fixtures/record_cases.json pins that part).

import type { ChatMessage, Identity } from "../protocol";
import { RECORD_KIND, compareMessages } from "./msglog";

export interface Reaction {
  emoji: string;
  users: string[];
}

/** A shown message: the log entry's identity fields with its current content. */
export interface MessageState {
  id: string;
  author: string;
  user: Identity;
  time: number;
  text: string;
  reply_to: string | null;
  /** The `time` of the edit shown, null if never edited. */
  edited: number | null;
  deleted: boolean;
  reactions: Reaction[];
}

/** Strings in code point order, as Python sorts them (UTF-16 order differs above U+FFFF). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = (x[i].codePointAt(0) as number) - (y[i].codePointAt(0) as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** The shown state of a room's messages, built from log entries in any arrival order. */
export class Timeline {
  private readonly entries = new Map<string, ChatMessage>();
  private readonly amendments = new Map<string, ChatMessage[]>();
  private readonly states = new Map<string, MessageState>();
  /** The room's off-the-record switches, in log order. */
  private records: ChatMessage[] = [];

  /** Take one log entry; return the id of the message whose state it changed, if any. */
  add(entry: ChatMessage): string | null {
    this.entries.set(entry.id, entry); // or a first-hand copy replacing a relayed one
    if (entry.kind === RECORD_KIND) {
      this.records = [...this.records.filter((r) => r.id !== entry.id), entry].sort(compareMessages);
      return null;
    }
    if (entry.kind === undefined) {
      this.states.delete(entry.id);
      return entry.id;
    }
    const target = entry.target as string; // the log validates that amendments name a target
    const pending = (this.amendments.get(target) ?? []).filter((a) => a.id !== entry.id);
    pending.push(entry);
    pending.sort(compareMessages);
    this.amendments.set(target, pending);
    this.states.delete(target);
    return this.isMessage(target) ? target : null;
  }

  /** The entry held for `id` (the newest copy), if any. */
  entry(id: string): ChatMessage | undefined {
    return this.entries.get(id);
  }

  /** What the message shows now; null for an amendment or an id not held. */
  state(id: string): MessageState | null {
    if (!this.isMessage(id)) return null;
    let cached = this.states.get(id);
    if (cached === undefined) {
      cached = this.fold(this.entries.get(id) as ChatMessage);
      this.states.set(id, cached);
    }
    return cached;
  }

  /** The room's latest off-the-record switch in log order (null: never switched, so on the
   *  record); the room is off the record when its `on` is false. */
  record(): ChatMessage | null {
    return this.records[this.records.length - 1] ?? null;
  }

  /** Whether entry `id` is off the record (never stored); false if not held. */
  offRecord(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined || entry.kind === RECORD_KIND) return false;
    if (entry.off_record === true) return true;
    if (entry.kind === undefined) {
      // The latest switch ordered before the message (binary search: switches are few, but
      // this runs for every message of a 10,000-message room).
      let lo = 0;
      let hi = this.records.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (compareMessages(this.records[mid], entry) < 0) lo = mid + 1;
        else hi = mid;
      }
      return lo > 0 && this.records[lo - 1].on === false;
    }
    const target = entry.target;
    return target !== undefined && this.isMessage(target) && this.offRecord(target);
  }

  /** Ids of edits and deletes refused because their user is not the target's. */
  refused(): string[] {
    const refused: string[] = [];
    for (const [target, amendments] of this.amendments) {
      if (!this.isMessage(target)) continue;
      const message = this.entries.get(target) as ChatMessage;
      for (const amendment of amendments) {
        if (
          (amendment.kind === "edit" || amendment.kind === "delete") &&
          amendment.user.username !== message.user.username &&
          compareMessages(amendment, message) > 0
        ) {
          refused.push(amendment.id);
        }
      }
    }
    return refused.sort();
  }

  private isMessage(id: string): boolean {
    const entry = this.entries.get(id);
    return entry !== undefined && entry.kind === undefined;
  }

  private fold(message: ChatMessage): MessageState {
    let { text } = message;
    let edited: number | null = null;
    let deleted = false;
    let reactions = new Map<string, Map<string, boolean>>();
    const owner = message.user.username;
    for (const amendment of this.amendments.get(message.id) ?? []) {
      if (deleted || compareMessages(amendment, message) <= 0) continue;
      const username = amendment.user.username;
      if (amendment.kind === "react") {
        const emoji = amendment.emoji as string;
        let byUser = reactions.get(emoji);
        if (byUser === undefined) {
          byUser = new Map();
          reactions.set(emoji, byUser);
        }
        byUser.set(username, amendment.on === true);
      } else if (username !== owner) {
        continue;
      } else if (amendment.kind === "edit") {
        text = amendment.text;
        edited = amendment.time;
      } else if (amendment.kind === "delete") {
        text = "";
        deleted = true;
        reactions = new Map();
      }
    }
    return {
      id: message.id,
      author: message.author,
      user: message.user,
      time: message.time,
      text,
      reply_to: message.reply_to ?? null,
      edited,
      deleted,
      reactions: [...reactions]
        .map(([emoji, byUser]) => ({
          emoji,
          users: [...byUser]
            .filter(([, on]) => on)
            .map(([user]) => user)
            .sort(byCodePoint),
        }))
        .filter((reaction) => reaction.users.length > 0),
    };
  }
}
