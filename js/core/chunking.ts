// Chunking (docs/protocol.md §4, CHUNK): splitting frames too big for peerjs, and reassembly.
// Pure, no I/O (the chunk id comes from the caller); mirrors src/nbchat/core/chunking.py,
// pinned by tests/fixtures/chunking.json. Sizes are UTF-8 bytes throughout: that is what
// peerjs measures, and it counts the same in both languages (UTF-16 code units and code
// points do not).

import {
  ChatFrameType,
  type ChatFrame,
  type ChunkFrame,
  InvalidFrame,
  MAX_MESSAGE_BYTES,
  dumps,
  parseChatFrame,
  utf8Length,
} from "./frames";
import { MAX_RICH_BYTES } from "./rich";

/**
 * A frame whose JSON is this many UTF-8 bytes or more travels as CHUNK frames. peerjs 1.5 in
 * json mode refuses a value of 16,300 bytes or more (its `chunkedMTU`, kept below the 16 KiB
 * that Firefox → Chrome delivers in one piece); 15,000 leaves room to spare.
 */
export const CHUNK_THRESHOLD_BYTES = 15_000;
/**
 * The most bytes a chunk's `data` costs once JSON-escaped: the rest of the chunk frame (type,
 * an id of up to 128 characters, index, count) takes under 200 bytes, so every chunk frame
 * stays within CHUNK_THRESHOLD_BYTES and well below peerjs's limit.
 */
export const CHUNK_SLICE_BYTES = CHUNK_THRESHOLD_BYTES - 200;
/**
 * Unfinished chunked frames per connection. A data channel is ordered, so an honest sender
 * has one in flight at a time; the bound caps what a hostile one makes us hold.
 */
export const MAX_CHUNKED_IN_FLIGHT = 16;
/** Most chunks in one frame: 4,096 full slices are ~60 MB, far beyond any room's limit. */
export const MAX_CHUNK_COUNT = 4096;

/**
 * Largest reassembled frame (UTF-8 bytes of its JSON) a room accepts. A chunked frame carries
 * one message at most a little over the room's limit (a history batch too big for one frame
 * holds a single message); JSON escaping makes a text at most 6 times bigger (a control
 * character becomes \u00XX), and the envelope and identity fit in 64 KiB.
 */
export function maxChunkedBytes(maxMessageBytes: number = MAX_MESSAGE_BYTES): number {
  return 6 * maxMessageBytes + MAX_RICH_BYTES + 65_536;
}

/** UTF-8 bytes a character costs inside a JSON string (control characters: at most 6). */
function escapedCost(codePoint: number): number {
  if (codePoint === 0x22 || codePoint === 0x5c) return 2;
  if (codePoint < 0x20) return 6;
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return codePoint >= 0xd800 && codePoint <= 0xdfff ? 6 : 3;
  return 4;
}

/**
 * `text` cut greedily into slices whose JSON-escaped UTF-8 size is at most `budget`. Never
 * inside a character or a surrogate pair, so both languages cut any text at the same places.
 */
export function sliceText(text: string, budget: number = CHUNK_SLICE_BYTES): string[] {
  const slices: string[] = [];
  let start = 0;
  let cost = 0;
  let i = 0;
  while (i < text.length) {
    const codePoint = text.codePointAt(i) as number;
    const width = codePoint > 0xffff ? 2 : 1;
    const charCost = escapedCost(codePoint);
    if (cost + charCost > budget && i > start) {
      slices.push(text.slice(start, i));
      start = i;
      cost = 0;
    }
    cost += charCost;
    i += width;
  }
  if (i > start || slices.length === 0) slices.push(text.slice(start, i));
  return slices;
}

/**
 * The frames to send for `frame`: itself if small enough, else CHUNK frames of its JSON
 * text. `chunkId` is called once, only when the frame is chunked.
 */
export function split(frame: ChatFrame, chunkId: () => string): ChatFrame[] {
  const text = dumps(frame);
  if (utf8Length(text) < CHUNK_THRESHOLD_BYTES) return [frame];
  const id = chunkId();
  const slices = sliceText(text);
  return slices.map((data, index) => ({ type: ChatFrameType.CHUNK, id, index, count: slices.length, data }));
}

export interface AssemblerLimits {
  /** Largest reassembled frame, UTF-8 bytes of its JSON (default: maxChunkedBytes()). */
  maxBytes?: number;
  /** Most unfinished chunked frames held (default MAX_CHUNKED_IN_FLIGHT). */
  maxPending?: number;
  /** Most chunks in one frame (default MAX_CHUNK_COUNT). */
  maxCount?: number;
}

interface Partial {
  count: number;
  parts: Map<number, string>;
  size: number;
}

/**
 * Reassembles one connection's CHUNK frames, which may arrive in any order. `feed` returns the
 * whole frame when its last chunk arrives and null meanwhile; it throws InvalidFrame for a
 * chunk that is malformed, inconsistent or over the limits (the chunks of that frame received
 * so far are then forgotten, except when the refused chunk would have started a new frame).
 */
export class ChunkAssembler {
  readonly maxBytes: number;
  readonly maxPending: number;
  readonly maxCount: number;
  private readonly partials = new Map<string, Partial>();

  constructor(limits: AssemblerLimits = {}) {
    this.maxBytes = limits.maxBytes ?? maxChunkedBytes();
    this.maxPending = limits.maxPending ?? MAX_CHUNKED_IN_FLIGHT;
    this.maxCount = limits.maxCount ?? MAX_CHUNK_COUNT;
  }

  /** Unfinished chunked frames held. */
  get pending(): number {
    return this.partials.size;
  }

  feed(chunk: unknown): ChatFrame | null {
    const frame = parseChatFrame(chunk);
    if (frame === null || frame.type !== ChatFrameType.CHUNK) throw new InvalidFrame("malformed chunk");
    const { id, index, count, data } = frame as ChunkFrame;
    let partial = this.partials.get(id);
    if (partial === undefined) {
      if (count > this.maxCount) throw new InvalidFrame("too many chunks in one frame");
      if (this.partials.size >= this.maxPending) throw new InvalidFrame("too many chunked frames in flight");
      partial = { count, parts: new Map(), size: 0 };
      this.partials.set(id, partial);
    }
    if (partial.count !== count) {
      this.partials.delete(id);
      throw new InvalidFrame("chunk count changed within one frame");
    }
    if (partial.parts.has(index)) return null; // a repeat: the first copy stands
    partial.size += utf8Length(data);
    if (partial.size > this.maxBytes) {
      this.partials.delete(id);
      throw new InvalidFrame("chunked frame too big");
    }
    partial.parts.set(index, data);
    if (partial.parts.size < count) return null;
    this.partials.delete(id);
    let value: unknown;
    try {
      value = JSON.parse(Array.from({ length: count }, (_, i) => partial.parts.get(i)).join(""));
    } catch {
      throw new InvalidFrame("chunked frame is not a JSON object");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InvalidFrame("chunked frame is not a JSON object");
    }
    const whole = parseChatFrame(value);
    if (whole === null) throw new InvalidFrame("chunked frame is not a chat frame");
    if (whole.type === ChatFrameType.CHUNK) throw new InvalidFrame("a chunked frame may not itself be a chunk");
    return whole;
  }

  clear(): void {
    this.partials.clear();
  }
}
