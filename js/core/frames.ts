// Chat data-channel frames (docs/protocol.md §4): their types, parsing and encoding.
// Pure, no I/O; mirrors src/nbchat/core/frames.py, pinned by tests/fixtures/chat_frames.json.
// peerjs 1.5 in json mode sends each value as the UTF-8 bytes of JSON.stringify(value).

import type { ChatMessage } from "../protocol";

/** The default largest message `text` in UTF-8 bytes (the room's `max_message_bytes`). */
export const MAX_MESSAGE_BYTES = 65_536;
/** Integers must survive a round trip through a JavaScript number. */
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;
/** A chunk id is a short string: the receiver keys its reassembly state by it. */
export const CHUNK_ID_MAX_LENGTH = 128;
/** A `file-*` frame names its file by the id of the MESSAGE that carries its card. */
export const FILE_ID_MAX_LENGTH = 128;

/** The `type` of a chat frame sent over a peerjs DataConnection. */
export const ChatFrameType = {
  MESSAGE: "message",
  SYNC: "sync",
  HISTORY: "history",
  CHUNK: "chunk",
  FILE_GET: "file-get",
  FILE_PART: "file-part",
  FILE_CANCEL: "file-cancel",
  TYPING: "typing",
  CERTS: "certs",
} as const;
export type ChatFrameType = (typeof ChatFrameType)[keyof typeof ChatFrameType];

/**
 * A log entry as a frame carries it: a signed one leaves out `id` (its author and seq make it)
 * and `user` (its author's certificate names it): core/signing `onWire`. Received, it is
 * untrusted until the log has checked it (core/msglog).
 */
export type WireEntry = Omit<ChatMessage, "id" | "user"> & Partial<Pick<ChatMessage, "id" | "user">>;
/** `certs`: certificates of its authors not sent on this link before (core/signing). */
export type MessageFrame = { type: typeof ChatFrameType.MESSAGE; message: WireEntry; certs?: unknown[] };
/** `beyond` (optional): per author, `[first, last]` ranges of seqs held past `have` (core/msglog). */
export type SyncFrame = { type: typeof ChatFrameType.SYNC; have: Record<string, number>; beyond?: Record<string, [number, number][]> };
export type HistoryFrame = { type: typeof ChatFrameType.HISTORY; messages: WireEntry[]; certs?: unknown[] };
export type ChunkFrame = {
  type: typeof ChatFrameType.CHUNK;
  id: string;
  index: number;
  count: number;
  data: string;
};
/** Ask the author of a file's card for its bytes, or stop (either side) sending them. */
export type FileRequestFrame =
  | { type: typeof ChatFrameType.FILE_GET; file: string; from?: number }
  | { type: typeof ChatFrameType.FILE_CANCEL; file: string };
export type FilePartFrame = { type: typeof ChatFrameType.FILE_PART; file: string; index: number; count: number; data: string };
/** Someone is typing (`on`) or stopped; shown for a few seconds, never stored (core/mentions). */
export type TypingFrame = { type: typeof ChatFrameType.TYPING; on: boolean };
/** Certificates of authors (core/signing), sent before the entries they vouch for (peers now send them in those entries' frame). */
export type CertsFrame = { type: typeof ChatFrameType.CERTS; certs: unknown[] };
export type ChatFrame =
  | MessageFrame
  | SyncFrame
  | HistoryFrame
  | ChunkFrame
  | FileRequestFrame
  | FilePartFrame
  | TypingFrame
  | CertsFrame;

/** A data-channel payload that is not a frame we accept. */
export class InvalidFrame extends Error {}

const encoder = new TextEncoder();

export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** JSON text as peerjs sends it. */
export function dumps(value: unknown): string {
  return JSON.stringify(value);
}

export function encode(frame: ChatFrame): Uint8Array {
  return encoder.encode(dumps(frame));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown, least: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= least;
}

/**
 * The frame `value` is if its shape is a chat frame's, else null. Only the envelope is
 * checked: a MESSAGE's fields are the message log's job.
 */
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
        value.id.length > 0 &&
        value.id.length <= CHUNK_ID_MAX_LENGTH &&
        isCount(value.index, 0) &&
        isCount(value.count, 1) &&
        value.index < value.count &&
        typeof value.data === "string"
        ? (value as ChunkFrame)
        : null;
    case ChatFrameType.FILE_GET:
    case ChatFrameType.FILE_CANCEL:
    case ChatFrameType.FILE_PART: {
      const file = value.file;
      if (typeof file !== "string" || file.length === 0 || file.length > FILE_ID_MAX_LENGTH) return null;
      if (value.type === ChatFrameType.FILE_CANCEL) return value as FileRequestFrame;
      if (value.type === ChatFrameType.FILE_GET) {
        // `from`: resume at that part (after a dropped link); absent is 0.
        const start = value.from ?? 0;
        return isCount(start, 0) ? ({ ...value, from: start } as FileRequestFrame) : null;
      }
      return isCount(value.index, 0) && isCount(value.count, 1) && value.index < value.count && typeof value.data === "string"
        ? (value as FilePartFrame)
        : null;
    }
    case ChatFrameType.TYPING:
      return typeof value.on === "boolean" ? (value as TypingFrame) : null;
    case ChatFrameType.CERTS:
      return Array.isArray(value.certs) ? (value as CertsFrame) : null;
    default:
      return null;
  }
}
