// What the chat shows, derived from ChatProxy's connection facts: pure, so it is tested alone.

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
  messages: readonly ChatMessage[];
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
  messages: readonly ChatMessage[];
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
