// Hostile data-channel input against the widget's parsers: parseChatFrame, ChunkAssembler and
// the MessageLog. Seeded random JSON (no property-testing library in the bundle's deps) plus
// hand-picked edge cases. "Never breaks" means: parseChatFrame never throws, the assembler
// throws only InvalidFrame (ChatProxy catches those), the log throws only InvalidMessage, and
// the log stays ordered, unique and free of forged own messages.

import { describe, expect, it } from "vitest";
import { ChunkAssembler } from "./core/chunking";
import { type ChatFrame, InvalidFrame, parseChatFrame } from "./core/frames";
import { InvalidMessage, MessageLog, compareMessages } from "./core/msglog";
import { RICH_MIME_TYPES } from "./core/rich";
import { FileShare } from "./fileShare";
import type { Identity } from "./protocol";

/** mulberry32: a tiny seeded PRNG, so a failure replays exactly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = [
  "", "A", "B", "S", "B:1", "message", "history", "sync", "chunk", "__proto__", "constructor",
  "\ud800", "\udfff", "a\u0000b", "\u202eevil", "😀", "e\u0301", "<script>alert(1)</script>", "x".repeat(300),
];
const NUMBERS = [0, 1, -1, 1.5, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 1e308, Infinity, -Infinity, NaN, 7, 3];
const KEYS = ["type", "message", "messages", "have", "id", "index", "count", "data", "author", "seq", "clock", "time", "text", "user", "username", "display_name", "__proto__", "mime", "file", "text/html", "image/png", "image/svg+xml", "name", "size", "sha256"];

function randomValue(next: () => number, depth = 0): unknown {
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const roll = next();
  if (depth > 4 || roll < 0.25) return pick([null, true, false, undefined]);
  if (roll < 0.45) return pick(NUMBERS);
  if (roll < 0.65) return pick(STRINGS);
  if (roll < 0.75) return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
  const value: Record<string, unknown> = {};
  for (let i = Math.floor(next() * 6); i > 0; i -= 1) value[pick(KEYS)] = randomValue(next, depth + 1);
  return value;
}

/** A random frame that is often nearly right: the interesting bugs hide there. */
function randomFrame(next: () => number): unknown {
  const message = (): unknown => ({
    seq: randomValue(next) ?? 1, clock: next() < 0.5 ? 1 : randomValue(next), time: next() < 0.5 ? 1 : randomValue(next),
    text: next() < 0.7 ? "hi" : randomValue(next), user: next() < 0.5 ? { username: "u" } : randomValue(next),
    author: next() < 0.5 ? "A" : randomValue(next), id: randomValue(next),
    mime: next() < 0.3 ? { "text/html": "<table><script>x</script></table>", "image/png": "iVBORw0KGgoAAAA=", junk: 1 } : randomValue(next),
    file: next() < 0.3 ? { name: "../../x", size: randomValue(next), type: "t/x", sha256: "0".repeat(64) } : randomValue(next),
  });
  const fileId = (): unknown => (next() < 0.7 ? "B:1" : randomValue(next));
  switch (Math.floor(next() * 8)) {
    case 5: return { type: "file-get", file: fileId() };
    case 6: return { type: "file-cancel", file: fileId() };
    case 7: return { type: "file-part", file: fileId(), index: next() < 0.5 ? 0 : randomValue(next), count: next() < 0.5 ? 1 : randomValue(next), data: next() < 0.5 ? "AAAA" : randomValue(next) };
    case 0: return { type: "message", message: message() };
    case 1: return { type: "history", messages: Array.from({ length: Math.floor(next() * 4) }, message) };
    case 2: return {
      type: "sync", have: randomValue(next),
      beyond: next() < 0.5 ? { A: [[1, 2], [3, randomValue(next)], randomValue(next)], [STRINGS[Math.floor(next() * STRINGS.length)]]: randomValue(next) } : randomValue(next),
    };
    case 3: return { type: "chunk", id: next() < 0.7 ? "c-1" : randomValue(next), index: randomValue(next), count: randomValue(next), data: next() < 0.7 ? "{" : randomValue(next) };
    default: return randomValue(next);
  }
}

const bob: Identity = { username: "bob", name: "bob", display_name: "Bob", initials: null, color: null, avatar_url: null };
const self: Identity = { ...bob, username: "self", name: "self", display_name: "Self" };

describe("hostile frames against the widget's parsers", () => {
  it.each([1, 2, 3, 4, 5])("seed %i: 2,000 random frames never break parsing, reassembly or the log", (seed) => {
    const next = rng(seed);
    const log = new MessageLog("S", self);
    const assembler = new ChunkAssembler({ maxBytes: 4096, maxPending: 4 });
    const files = new FileShare({ selfId: () => "S", send: () => true, isOpen: () => true, buffered: () => 0 });
    for (let i = 0; i < 2_000; i += 1) {
      // A frame arrives as peerjs hands it over: already JSON.parse'd.
      const raw = JSON.parse(JSON.stringify(randomFrame(next)) ?? "null");
      let frame = parseChatFrame(raw);
      if (frame !== null && frame.type === "chunk") {
        let whole: ChatFrame | null = null;
        try {
          whole = assembler.feed(frame);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidFrame); // ChatProxy logs it and drops the chunk
        }
        frame = whole;
      }
      if (frame === null) continue;
      if (frame.type === "file-get" || frame.type === "file-part" || frame.type === "file-cancel") {
        files.onFrame("B", frame); // never throws: bad parts fail the transfer
        continue;
      }
      try {
        if (frame.type === "message") {
          const added = log.receiveDirect("B", bob, frame.message);
          if (added !== null) files.onMessages([added]);
        }
        else if (frame.type === "history") log.receiveHistory(frame.messages, "B", bob, new Set(["B"]));
        else if (frame.type === "sync") log.missingFor(frame.have, frame.beyond);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidMessage);
      }
    }
    expect(log.size).toBeGreaterThan(0); // the random frames did reach the log
    const ids = log.messages.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < log.messages.length; i += 1) {
      expect(compareMessages(log.messages[i - 1], log.messages[i])).toBeLessThan(0);
    }
    for (const message of log.messages) {
      expect(message.author).not.toBe("S"); // nobody else is a source for our own messages
      if (message.author === "B") expect(message.user).toEqual(bob); // bound, never claimed
      expect(Number.isSafeInteger(message.seq) && Number.isSafeInteger(message.clock)).toBe(true);
      for (const kind of Object.keys(message.mime ?? {})) expect(RICH_MIME_TYPES).toContain(kind);
      if (message.file !== undefined) expect(message.file.name).not.toMatch(/[/\\]/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(log.compose("still works", 0).author).toBe("S");
  });

  it.each([
    [{ index: 0, count: 1e9 }, "too many chunks"],
    [{ index: 0, count: 2 ** 53 + 2 }, null],
    [{ index: 5, count: 2 }, null],
    [{ index: -1, count: 2 }, null],
    [{ index: 0.5, count: 2 }, null],
    [{ index: 0, count: 0 }, null],
    [{ index: "0", count: 2 }, null],
  ])("refuses a chunk with absurd count or index %j", (fields, error) => {
    const frame = parseChatFrame({ type: "chunk", id: "c-x", data: "{", ...fields });
    if (error === null) {
      expect(frame).toBeNull(); // malformed: never reaches the assembler
      return;
    }
    const assembler = new ChunkAssembler({ maxBytes: 4096, maxPending: 4 });
    expect(() => assembler.feed(frame)).toThrow(error);
  });

  it("bounds unfinished chunked frames per connection and survives junk in a finished one", () => {
    const assembler = new ChunkAssembler({ maxBytes: 4096, maxPending: 4 });
    for (let i = 0; i < 4; i += 1) assembler.feed({ type: "chunk", id: `c-${i}`, index: 0, count: 2, data: "x" });
    expect(() => assembler.feed({ type: "chunk", id: "c-9", index: 0, count: 2, data: "x" })).toThrow("in flight");
    expect(() => assembler.feed({ type: "chunk", id: "c-0", index: 1, count: 2, data: "not json" })).toThrow(InvalidFrame);
    // The failed frame is gone: its slot is free again.
    expect(assembler.feed({ type: "chunk", id: "c-10", index: 0, count: 1, data: '{"type":"sync","have":{}}' })).toEqual({
      type: "sync",
      have: {},
    });
  });

  it("a deeply nested chunked frame fails cleanly", () => {
    const assembler = new ChunkAssembler({ maxBytes: 4_000_000, maxPending: 4 });
    const deep = "[".repeat(1_000_000) + "]".repeat(1_000_000);
    let result: unknown = null;
    try {
      result = assembler.feed({ type: "chunk", id: "c-d", index: 0, count: 1, data: deep });
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidFrame);
    }
    expect(result).toBeNull();
  });
});
