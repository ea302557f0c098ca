// Who a message calls by `@name` (docs/protocol.md §4.5), and who is typing. Mirrors
// src/nbchat/core/mentions.py (whose docstring states the rules); tests/fixtures/mentions.json
// pins both. Pure: no I/O, no timers.

export const TYPING_REFRESH_MS = 2_000;
export const TYPING_TTL_MS = 5_000;

const NAME_CHAR = /[A-Za-z0-9_-]/;
const ADDRESS_CHAR = /[A-Za-z0-9_.\-+@]/;
const CODE = /```[\s\S]*?(?:```|$)|(`+)(?!`)[\s\S]*?(?<!`)\1(?!`)/g;

const asciiLower = (text: string): string => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Where each mention is in `text` (UTF-16 offsets, for highlighting) and whom it calls. */
export interface Mention {
  start: number;
  end: number;
  username: string;
}

/** Every mention in `text`, in order (a username may be called more than once). */
export function findMentions(text: string, usernames: Iterable<string>): Mention[] {
  const known = [...new Set([...usernames].filter((u) => u !== ""))].sort((a, b) =>
    a.length !== b.length ? b.length - a.length : a < b ? -1 : a > b ? 1 : 0,
  );
  const folded = asciiLower(text.replace(CODE, (m) => " ".repeat(m.length)));
  const found: Mention[] = [];
  for (let at = folded.indexOf("@"); at !== -1; at = folded.indexOf("@", at + 1)) {
    if (at > 0 && ADDRESS_CHAR.test(folded[at - 1])) continue;
    for (const username of known) {
      const end = at + 1 + username.length;
      if (folded.startsWith(asciiLower(username), at + 1) && (end === folded.length || !NAME_CHAR.test(folded[end]))) {
        found.push({ start: at, end, username });
        break;
      }
    }
  }
  return found;
}

/** The usernames `text` mentions, in order of first mention, each once. */
export function mentions(text: string, usernames: Iterable<string>): string[] {
  return [...new Set(findMentions(text, usernames).map((m) => m.username))];
}

/** What the chat says about who is typing: "" for nobody. */
export function typingLabel(names: readonly string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
}

/** Who is typing now, by peer id, from `typing` frames and the clock. */
export class TypingTracker {
  private readonly until = new Map<string, { until: number; name: string }>();

  /** A `typing` frame from `peer`; whether who is shown typing may have changed (a refresh
   *  of someone already shown does not: nothing to render, only the expiry moves). */
  typing(peer: string, name: string, now: number, on = true): boolean {
    if (!on) return this.until.delete(peer);
    const held = this.until.get(peer);
    if (held === undefined) {
      this.until.set(peer, { until: now + TYPING_TTL_MS, name });
      return true;
    }
    const changed = held.until <= now || held.name !== name;
    held.until = now + TYPING_TTL_MS;
    held.name = name;
    return changed;
  }

  /** The peer sent its message or left; whether it was shown typing. */
  stopped(peer: string): boolean {
    return this.until.delete(peer);
  }

  /** Who is typing at `now`, in the order they started, each name once; expired ones forgotten. */
  names(now: number): string[] {
    for (const [peer, { until }] of this.until) if (until <= now) this.until.delete(peer);
    return [...new Set([...this.until.values()].map((v) => v.name))];
  }

  /** When the next expiry is due (for a timer), null if nobody is typing. */
  nextChange(): number | null {
    let next: number | null = null;
    for (const { until } of this.until.values()) if (next === null || until < next) next = until;
    return next;
  }
}
