import fixture from "../../tests/fixtures/sync_cases.json";
import { describe, expect, it, vi } from "vitest";
import { MessageLog, normalizeIdentity } from "./msglog";
import { onWire } from "./signing";
import { ANTI_ENTROPY_MS, HISTORY_BATCH_BYTES, RoomSync, SYNC_ANSWER_INTERVAL_MS, type Send, type SyncEvent, historyBatches, newestFirstBatches } from "./sync";

interface Case {
  name: string;
  self: { peer_id: string; user: unknown };
  max_message_bytes: number | null;
  start: number;
  /** ms between repair rounds, when not ANTI_ENTROPY_MS. */
  repair_ms?: number;
  steps: Record<string, any>[];
}

const FIXTURE = fixture as unknown as { constants: Record<string, number>; cases: Case[] };

/** A sent frame as the fixture writes it: messages by id. */
function sent({ to, frame }: Send): Record<string, unknown> {
  switch (frame.type) {
    case "sync":
      return frame.beyond === undefined ? { to, type: "sync", have: frame.have } : { to, type: "sync", have: frame.have, beyond: frame.beyond };
    case "history":
      return { to, type: "history", ids: frame.messages.map((m) => m.id) };
    case "message":
      return { to, type: "message", id: frame.message.id };
    default:
      return { to, type: frame.type };
  }
}

function event(e: SyncEvent): Record<string, unknown> {
  switch (e.type) {
    case "added":
      return { type: e.type, peer: e.peer, ids: e.messages.map((m) => m.id) };
    case "rejected":
      return { type: e.type, peer: e.peer, count: e.reasons.length };
    case "too_big":
      return { type: e.type, peer: e.peer, count: e.count };
    case "invalid":
      return { type: e.type, peer: e.peer, frame: e.frame };
    case "confirmed":
      return { type: e.type, peer: e.peer, seq: e.seq };
    case "repair":
      return { type: e.type };
  }
}

describe("room sync (tests/fixtures/sync_cases.json)", () => {
  it("has the shared constants", () => {
    expect({ SYNC_ANSWER_INTERVAL_MS, ANTI_ENTROPY_MS, HISTORY_BATCH_BYTES }).toEqual(FIXTURE.constants);
  });

  for (const c of FIXTURE.cases) {
    it(c.name, () => {
      const log = new MessageLog(c.self.peer_id, normalizeIdentity(c.self.user));
      const room = new RoomSync(log, c.max_message_bytes, c.start, c.repair_ms ?? ANTI_ENTROPY_MS);
      c.steps.forEach((step, number) => {
        if (step.op === "deadline") {
          expect(room.nextDeadline(), `step ${number}`).toBe(step.deadline);
          return;
        }
        if (step.op === "restore") {
          expect(log.restore(step.messages), `step ${number}`).toBe(step.result);
          return;
        }
        let out;
        switch (step.op) {
          case "compose":
            out = room.publish(log.compose(step.text, step.time));
            break;
          case "open":
            out = room.onLinkOpen(step.peer, step.now);
            break;
          case "closed":
            out = room.onLinkClosed(step.peer);
            break;
          case "drain":
            out = room.drain(step.peer);
            break;
          case "frame":
            out = room.onFrame(step.peer, step.frame, step.user === null ? null : normalizeIdentity(step.user), step.now);
            break;
          case "import":
            out = room.importHistory(step.messages);
            break;
          case "tick":
            out = room.tick(step.now);
            break;
          default:
            throw new Error(`unknown op ${step.op}`);
        }
        expect(out.sends.map(sent), `step ${number}: ${step.op}`).toEqual(step.sends ?? []);
        expect(out.events.map(event), `step ${number}: ${step.op}`).toEqual(step.events ?? []);
      });
    });
  }
});

describe("historyBatches", () => {
  it("keeps order and fits each batch in a frame unless one message is bigger", () => {
    const log = new MessageLog("m", normalizeIdentity({ username: "me" }));
    for (let i = 0; i < 50; i += 1) log.compose("é".repeat(i * 40), i);
    const batches = historyBatches(log.messages);
    expect(batches.flat()).toEqual(log.messages);
    for (const batch of batches) {
      const size = new TextEncoder().encode(JSON.stringify({ type: "history", messages: batch })).length;
      expect(batch.length === 1 || size < HISTORY_BATCH_BYTES).toBe(true);
    }
    expect(historyBatches([])).toEqual([]);
  });
});

describe("historyBatches of signed entries", () => {
  it("cuts batches by what goes on the wire (no id, no user), the same as the Python peer", () => {
    const log = new MessageLog("m", normalizeIdentity({ username: "someone", name: "Some One ".repeat(8) }));
    for (let i = 0; i < 300; i += 1) log.compose(`message ${i} about the numbers`, i);
    const entries = log.messages.map((m) => ({ ...m, sig: "s".repeat(86) }));
    const batches = historyBatches(entries);
    expect(batches.flat()).toEqual(entries);
    const size = (batch: object[]): number => new TextEncoder().encode(JSON.stringify({ type: "history", messages: batch })).length;
    for (const batch of batches) expect(size(batch.map(onWire))).toBeLessThan(HISTORY_BATCH_BYTES);
    expect(size([...batches[0], batches[1][0]].map(onWire))).toBeGreaterThanOrEqual(HISTORY_BATCH_BYTES - 64);
    expect(size(batches[0])).toBeGreaterThanOrEqual(HISTORY_BATCH_BYTES);
  });
});

describe("newestFirstBatches", () => {
  it("starts with the newest batch, keeps each batch in log order and covers the log once", () => {
    const log = new MessageLog("m", normalizeIdentity({ username: "me" }));
    for (let i = 0; i < 300; i += 1) log.compose(`message ${i} ${"x".repeat(i % 97)}`, i);
    const batches = newestFirstBatches(log.messages);
    expect(batches[0][batches[0].length - 1]).toBe(log.messages[log.messages.length - 1]);
    expect(batches.slice().reverse().flat()).toEqual(log.messages);
    expect(newestFirstBatches([])).toEqual([]);
  });

  it("an answer sizes only the batches it sends; the rest is cut as the link drains, the same", () => {
    const log = new MessageLog("m", normalizeIdentity({ username: "me" }));
    for (let i = 0; i < 3_000; i += 1) log.compose(`message ${i} ${"x".repeat(40)}`, i);
    const room = new RoomSync(log, null, 0);
    room.onLinkOpen("p", 0);
    const stringify = vi.spyOn(JSON, "stringify");
    const out = room.onFrame("p", { type: "sync", have: {} }, null, 0);
    const sized = stringify.mock.calls.length;
    stringify.mockRestore();
    const first = (out.sends[0].frame as { messages: unknown[] }).messages;
    expect(first[first.length - 1]).toBe(log.messages[log.messages.length - 1]);
    expect(sized).toBeLessThan(3 * first.length); // the first batch, and the next looked ahead
    const all = [first];
    while (room.backlogged().length > 0) all.push((room.drain("p").sends[0].frame as { messages: unknown[] }).messages);
    expect(all).toEqual(newestFirstBatches(log.messages));
  });
});
