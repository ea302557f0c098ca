// Wire formats shared with src/nbchat/protocol.py; the prose spec is docs/protocol.md.

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

/** Chat frame types sent over peerjs DataConnections. */
export const ChatFrameType = {
  MESSAGE: "message",
  SYNC: "sync",
  HISTORY: "history",
  CHUNK: "chunk",
} as const;
export type ChatFrameType = (typeof ChatFrameType)[keyof typeof ChatFrameType];

/** peerjs json serialization refuses a value of 16,300 bytes or more; we split well below. */
export const CHUNK_THRESHOLD_BYTES = 15_000;

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

/** `GET {base_url}nbchat/session?room=NAME`. */
export interface SessionConfig {
  room: string;
  key: string;
  path: string;
  ice_servers: RTCIceServer[];
  /** "relay": the server makes every peer use TURN-relayed candidates only (absent: "all"). */
  ice_transport_policy?: RTCIceTransportPolicy;
  user: Identity;
  ping_interval: number;
  alive_timeout: number;
  max_message_bytes: number;
  /** Who can join this room, in words ("everyone signed in to this hub"). */
  audience?: string;
  /** The shared signaling service this server relays to (JupyterHub), if any. */
  service?: string;
  version: string;
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
}

export type MessageFrame = { type: typeof ChatFrameType.MESSAGE; message: ChatMessage };
export type SyncFrame = { type: typeof ChatFrameType.SYNC; have: Record<string, number> };
export type HistoryFrame = { type: typeof ChatFrameType.HISTORY; messages: ChatMessage[] };
export type ChunkFrame = {
  type: typeof ChatFrameType.CHUNK;
  id: string;
  index: number;
  count: number;
  data: string;
};
export type ChatFrame = MessageFrame | SyncFrame | HistoryFrame | ChunkFrame;

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

function isCount(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
}

/** Shape check for a MESSAGE from an untrusted peer; `id` consistency is the log's job. */
export function isChatMessage(value: unknown): value is ChatMessage {
  return (
    isRecord(value) &&
    typeof value.id === "string" &&
    typeof value.author === "string" &&
    PEER_ID_RE.test(value.author) &&
    isCount(value.seq, 1) &&
    isCount(value.clock, 0) &&
    typeof value.time === "number" &&
    Number.isFinite(value.time) &&
    typeof value.text === "string" &&
    isIdentity(value.user)
  );
}

export function parseChatFrame(value: unknown): ChatFrame | null {
  if (!isRecord(value)) return null;
  switch (value.type) {
    case ChatFrameType.MESSAGE:
      return isRecord(value.message) ? (value as MessageFrame) : null;
    case ChatFrameType.SYNC:
      return isRecord(value.have) ? (value as SyncFrame) : null;
    case ChatFrameType.HISTORY:
      return Array.isArray(value.messages) ? (value as HistoryFrame) : null;
    case ChatFrameType.CHUNK:
      return typeof value.id === "string" &&
        isCount(value.index, 0) &&
        isCount(value.count, 1) &&
        value.index < value.count &&
        typeof value.data === "string"
        ? (value as ChunkFrame)
        : null;
    default:
      return null;
  }
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
