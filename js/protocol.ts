// Signaling and presence formats shared with src/nbchat/protocol.py; the prose spec is
// docs/protocol.md. Chat frames, the session config and the comm messages live in core/.

import type { FileMeta } from "./core/files";
import type { MimeBundle } from "./core/rich";

/** PeerJS signaling frame types (server protocol 1.x) plus nbchat's presence topics. */
export const FrameType = {
  OPEN: "OPEN",
  ERROR: "ERROR",
  ID_TAKEN: "ID-TAKEN",
  HEARTBEAT: "HEARTBEAT",
  OFFER: "OFFER",
  ANSWER: "ANSWER",
  CANDIDATE: "CANDIDATE",
  LEAVE: "LEAVE",
  EXPIRE: "EXPIRE",
  ROSTER: "ROSTER",
  USER_CONNECTED: "USER_CONNECTED",
  USER_DISCONNECTED: "USER_DISCONNECTED",
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const ROOM_KEY_RE = /^[A-Za-z0-9_-]{1,128}$/;
export const PEER_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The Jupyter user bound to a connection by the server. */
export interface Identity {
  username: string;
  name: string;
  display_name: string;
  initials: string | null;
  color: string | null;
  avatar_url: string | null;
}

export interface Presence {
  peer_id: string;
  user: Identity;
}

export type PresenceFrame =
  | { type: typeof FrameType.ROSTER; key: string; peers: Presence[] }
  | { type: typeof FrameType.USER_CONNECTED; key: string; peer: Presence }
  | { type: typeof FrameType.USER_DISCONNECTED; key: string; peer: Presence }
  | { type: typeof FrameType.ERROR; payload: { msg: string } };

export interface ChatMessage {
  id: string;
  author: string;
  seq: number;
  clock: number;
  time: number;
  text: string;
  user: Identity;
  /** A rich message's MIME bundle (core/rich); `text` stays the fallback. */
  mime?: MimeBundle;
  /** A shared file's card (core/files); its bytes travel apart, on request. */
  file?: FileMeta;
  /** An amendment's kind (js/core/edits.ts): "edit" | "delete" | "react", or "record" for the
   *  room's off-the-record switch; absent for a message. */
  kind?: string;
  /** The id an amendment applies to. */
  target?: string;
  /** The id a message answers. */
  reply_to?: string;
  /** A reaction's emoji. */
  emoji?: string;
  /** A reaction set (true) or taken back (false); a record switch back on the record (true). */
  on?: boolean;
  /** Composed while the room was off the record (js/core/edits.ts): never stored. */
  off_record?: boolean;
  /** The author's signature (js/core/signing.ts). */
  sig?: string;
  /** The digest of the author's previous entry (seq − 1), signed: a hash chain (js/core/signing.ts). */
  prev?: string;
}

export function messageId(author: string, seq: number): string {
  return `${author}:${seq}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): value is string | null {
  return value === null || typeof value === "string";
}

export function isIdentity(value: unknown): value is Identity {
  return (
    isRecord(value) &&
    typeof value.username === "string" &&
    typeof value.name === "string" &&
    typeof value.display_name === "string" &&
    optionalString(value.initials ?? null) &&
    optionalString(value.color ?? null) &&
    optionalString(value.avatar_url ?? null)
  );
}

export function isPresence(value: unknown): value is Presence {
  return (
    isRecord(value) &&
    typeof value.peer_id === "string" &&
    PEER_ID_RE.test(value.peer_id) &&
    isIdentity(value.user)
  );
}

export function parsePresenceFrame(value: unknown): PresenceFrame | null {
  if (!isRecord(value)) return null;
  switch (value.type) {
    case FrameType.ROSTER:
      return Array.isArray(value.peers) ? (value as PresenceFrame) : null;
    case FrameType.USER_CONNECTED:
    case FrameType.USER_DISCONNECTED:
      return isPresence(value.peer) ? (value as PresenceFrame) : null;
    case FrameType.ERROR:
      return isRecord(value.payload) ? (value as PresenceFrame) : null;
    default:
      return null;
  }
}
