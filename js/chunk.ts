// Splitting and reassembling chat frames too big for peerjs json serialization (CHUNK frames).

import { CHUNK_THRESHOLD_BYTES, ChatFrameType, type ChatFrame, type ChunkFrame } from "./protocol";

const encoder = new TextEncoder();

export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Bytes a character costs once JSON-escaped inside a string literal and UTF-8 encoded. */
function escapedCost(codePoint: number): number {
  if (codePoint === 0x22 || codePoint === 0x5c) return 2;
  if (codePoint < 0x20) return 6;
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return codePoint >= 0xd800 && codePoint <= 0xdfff ? 6 : 3;
  return 4;
}

/** Room left for `data` in a chunk frame: the envelope costs well under 200 bytes. */
const SLICE_BUDGET = CHUNK_THRESHOLD_BYTES - 200;

/** Split `text` into slices whose JSON-escaped UTF-8 size stays within `budget`, never inside a code point. */
export function sliceText(text: string, budget: number = SLICE_BUDGET): string[] {
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

/** The frames to send for `frame`: itself if small enough, else CHUNK frames of its JSON text. */
export function encodeFrame(frame: ChatFrame, chunkId: () => string): ChatFrame[] {
  const text = JSON.stringify(frame);
  if (utf8Length(text) < CHUNK_THRESHOLD_BYTES) return [frame];
  const id = chunkId();
  const slices = sliceText(text);
  return slices.map((data, index) => ({
    type: ChatFrameType.CHUNK,
    id,
    index,
    count: slices.length,
    data,
  }));
}

export interface AssemblerLimits {
  /** Largest reassembled JSON text accepted, in UTF-16 code units. */
  maxChars: number;
  /** Most chunked frames in flight per connection. */
  maxPending: number;
}

/** Reassembles CHUNK frames from one connection. Chunks of one id may arrive in any order. */
export class ChunkAssembler {
  private readonly pending = new Map<string, { count: number; parts: (string | undefined)[]; got: number; chars: number }>();

  constructor(private readonly limits: AssemblerLimits) {}

  /**
   * Add a chunk. Returns the parsed whole frame when the last part arrives, null while
   * waiting; throws an Error for a chunk that is inconsistent or over the limits.
   */
  add(chunk: ChunkFrame): unknown {
    let entry = this.pending.get(chunk.id);
    if (entry === undefined) {
      if (chunk.count > this.limits.maxChars) throw new Error(`chunk ${chunk.id}: too many parts`);
      if (this.pending.size >= this.limits.maxPending) {
        throw new Error("too many chunked frames in flight");
      }
      entry = { count: chunk.count, parts: new Array(chunk.count), got: 0, chars: 0 };
      this.pending.set(chunk.id, entry);
    }
    if (entry.count !== chunk.count) {
      this.pending.delete(chunk.id);
      throw new Error(`chunk ${chunk.id}: count changed`);
    }
    if (entry.parts[chunk.index] !== undefined) return null;
    entry.chars += chunk.data.length;
    if (entry.chars > this.limits.maxChars) {
      this.pending.delete(chunk.id);
      throw new Error(`chunk ${chunk.id}: frame too big`);
    }
    entry.parts[chunk.index] = chunk.data;
    entry.got += 1;
    if (entry.got < entry.count) return null;
    this.pending.delete(chunk.id);
    return JSON.parse(entry.parts.join(""));
  }
}
