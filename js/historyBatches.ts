// Splits a `history` answer into frames that each fit one data-channel message where possible.

import { CHUNK_THRESHOLD_BYTES } from "./core/chunking";
import { utf8Length } from "./core/frames";
import type { ChatMessage } from "./protocol";

/** Room for the `{"type":"history","messages":[…]}` envelope. */
const ENVELOPE_BYTES = 64;

/** Batches in order; a single message too big for a frame is a batch of its own (then chunked). */
export function historyBatches(messages: readonly ChatMessage[]): ChatMessage[][] {
  const batches: ChatMessage[][] = [];
  let batch: ChatMessage[] = [];
  let size = ENVELOPE_BYTES;
  for (const message of messages) {
    const cost = utf8Length(JSON.stringify(message)) + 1;
    if (batch.length > 0 && size + cost >= CHUNK_THRESHOLD_BYTES) {
      batches.push(batch);
      batch = [];
      size = ENVELOPE_BYTES;
    }
    batch.push(message);
    size += cost;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
