import { describe, expect, it } from "vitest";
import { CHUNK_THRESHOLD_BYTES, ChunkAssembler, sliceText, split } from "./chunking";
import { type ChatFrame, type ChunkFrame, utf8Length } from "./frames";

const user = { username: "u", name: "U", display_name: "U", initials: null, color: null, avatar_url: null };

function bigMessage(text: string): ChatFrame {
  return { type: "message", message: { id: "p:1", author: "p", seq: 1, clock: 1, time: 0, text, user } };
}

let counter = 0;
const nextId = () => `c-${++counter}`;

describe("chunking", () => {
  it("leaves small frames alone", () => {
    const frame = bigMessage("hello");
    expect(split(frame, nextId)).toEqual([frame]);
  });

  it.each([
    ["ascii", "x".repeat(100_000)],
    ["quotes and backslashes", '"\\'.repeat(30_000)],
    ["multibyte and astral", "é漢😀".repeat(9_000)],
    ["control characters", "\u0001\n\t".repeat(10_000)],
  ])("splits and reassembles %s under the peerjs limit", (_name, text) => {
    const frame = bigMessage(text);
    const chunks = split(frame, nextId) as ChunkFrame[];
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(chunk.type).toBe("chunk");
      expect(utf8Length(JSON.stringify(chunk))).toBeLessThanOrEqual(CHUNK_THRESHOLD_BYTES);
    }
    const assembler = new ChunkAssembler({ maxBytes: 10_000_000, maxPending: 4 });
    const shuffled = [...chunks].reverse();
    let whole: ChatFrame | null = null;
    for (const chunk of shuffled) whole = assembler.feed(chunk) ?? whole;
    expect(whole).toEqual(frame);
  });

  it("never splits a surrogate pair", () => {
    for (const slice of sliceText("😀".repeat(100), 10)) {
      expect(slice.length % 2).toBe(0);
    }
  });

  it("refuses frames over the size limit and too many in flight", () => {
    const assembler = new ChunkAssembler({ maxBytes: 10, maxPending: 1 });
    expect(() => assembler.feed({ type: "chunk", id: "a", index: 0, count: 2, data: "x".repeat(11) })).toThrow("too big");
    assembler.feed({ type: "chunk", id: "b", index: 0, count: 2, data: "x" });
    expect(() => assembler.feed({ type: "chunk", id: "c", index: 0, count: 2, data: "x" })).toThrow("in flight");
  });
});
