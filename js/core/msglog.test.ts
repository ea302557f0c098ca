import fixture from "../../tests/fixtures/msglog_cases.json";
import { describe, expect, it } from "vitest";
import { InvalidMessage, MAX_BEYOND_RANGES, MessageLog, normalizeIdentity } from "./msglog";
import type { Identity } from "../protocol";
import { ChatFrameType, dumps } from "./frames";

interface Case {
  name: string;
  self: { peer_id: string; user: unknown };
  ops: Record<string, any>[];
  expect: Record<string, any>;
}

const CASES = fixture as unknown as Case[];

function check(log: MessageLog, expected: Record<string, any>): void {
  if ("order" in expected) expect(log.messages.map((m) => m.id)).toEqual(expected.order);
  if ("have" in expected) expect(log.have()).toEqual(expected.have);
  if ("clock" in expected) expect(log.clock).toBe(expected.clock);
  if ("messages" in expected) expect(log.messages).toEqual(expected.messages);
  for (const query of expected.have_for ?? []) expect(log.have(query.peer)).toEqual(query.have);
  if ("beyond" in expected) expect(log.beyond()).toEqual(expected.beyond);
  for (const query of expected.beyond_for ?? []) expect(log.beyond(query.peer)).toEqual(query.beyond);
  for (const [id, position] of Object.entries(expected.index ?? {})) expect(log.index(id)).toBe(position);
  // What we would send: key order and number spelling, the same bytes as Python's encoder.
  if ("wire" in expected) expect(dumps({ type: ChatFrameType.HISTORY, messages: [...log.messages] })).toBe(expected.wire);
  for (const query of expected.missing_for ?? []) {
    expect(log.missingFor(query.have, query.beyond).map((m) => m.id)).toEqual(query.ids);
  }
}

function runOp(log: MessageLog, op: Record<string, any>): void {
  switch (op.op) {
    case "local":
      expect(op.as).toBe(log.peerId);
      expect(log.compose(op.text, op.time).id).toBe(op.result);
      return;
    case "direct": {
      let result: string | null;
      try {
        result = log.receiveDirect(op.from, normalizeIdentity(op.user), op.message)?.id ?? null;
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidMessage);
        result = "rejected";
      }
      expect(result).toEqual(op.result);
      return;
    }
    case "history": {
      const user = "user" in op ? normalizeIdentity(op.user) : undefined;
      const { added, rejected } = log.receiveHistory(op.messages, op.from, user, new Set(op.connected ?? []));
      expect(added.map((m) => m.id)).toEqual(op.result.added);
      expect(rejected.length).toBe(op.result.rejected);
      return;
    }
    case "restore":
      expect(log.restore(op.messages)).toBe(op.result);
      return;
    case "check":
      check(log, op);
      return;
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}

describe("golden fixture (shared with src/nbchat/core/msglog.py)", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const log = new MessageLog(c.self.peer_id, normalizeIdentity(c.self.user));
    for (const op of c.ops) runOp(log, op);
    check(log, c.expect);
  });
});

const alice: Identity = normalizeIdentity({ username: "alice" });
const bob: Identity = normalizeIdentity({ username: "bob" });

describe("MessageLog beyond the fixture", () => {
  it("converges: two logs exchanging what the other lacks hold the same order", () => {
    const a = new MessageLog("pa", alice);
    const b = new MessageLog("pb", bob);
    a.compose("a1", 1);
    b.compose("b1", 1);
    a.compose("a2", 2);
    a.receiveHistory(b.missingFor(a.have()), "pb", bob);
    b.receiveHistory(a.missingFor(b.have()), "pa", alice);
    expect(a.messages.map((m) => m.id)).toEqual(b.messages.map((m) => m.id));
    expect(a.messages.map((m) => m.id)).toEqual(["pa:1", "pb:1", "pa:2"]);
  });

  it("restores stored messages, own included, and skips junk", () => {
    const first = new MessageLog("old", alice);
    first.compose("before reload", 1);
    const reloaded = new MessageLog("new", alice);
    expect(reloaded.restore([...first.messages, { junk: true }, 5])).toBe(1);
    expect(reloaded.compose("after", 2)).toMatchObject({ id: "new:1", clock: 2 });
  });

  it("inserts 10,000 messages in well under a second", () => {
    const log = new MessageLog("me", alice);
    const started = performance.now();
    const batch = [];
    for (let i = 1; i <= 10_000; i += 1) {
      const author = i % 2 ? "pa" : "pb";
      const seq = Math.ceil(i / 2);
      batch.push({ id: `${author}:${seq}`, author, seq, clock: i, time: i, text: `m${i}`, user: bob });
    }
    log.receiveHistory(batch.reverse(), "pa", alice);
    expect(log.size).toBe(10_000);
    expect(log.messages[0].id).toBe("pa:1");
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("a newest-first history", () => {
  it("ends in the same order as one that came in order, and index() finds every message", () => {
    const user = normalizeIdentity({ username: "ann" });
    const source = new MessageLog("a", user);
    for (let i = 0; i < 500; i += 1) source.compose(`m${i}`, i);
    const wire = JSON.parse(JSON.stringify(source.messages)) as unknown[];
    const inOrder = new MessageLog("b", normalizeIdentity({ username: "bob" }));
    inOrder.receiveHistory(wire, "a", user, new Set(["a"]));
    const newestFirst = new MessageLog("c", normalizeIdentity({ username: "cy" }));
    for (let end = wire.length; end > 0; end -= 37) {
      newestFirst.receiveHistory(wire.slice(Math.max(0, end - 37), end), "a", user, new Set(["a"]));
      expect(newestFirst.messages[newestFirst.size - 1].text).toBe("m499");
    }
    expect(newestFirst.messages.map((m) => m.id)).toEqual(inOrder.messages.map((m) => m.id));
    expect(newestFirst.index("a:1")).toBe(0);
    expect(newestFirst.index("a:500")).toBe(499);
    expect(newestFirst.have()).toEqual({ a: 500 });
  });
});

describe("beyond: what a copy with gaps holds past have", () => {
  it("lets a copy with the same gaps answer nothing, and one lacking some get only those", () => {
    const stored = [1, 2, 5, 6, 9].map((seq) => ({ author: "pa", seq, clock: seq, time: seq, text: `m${seq}`, user: alice }));
    const holder = new MessageLog("ph", bob);
    const asker = new MessageLog("pq", bob);
    holder.restore(stored);
    asker.restore(stored.filter((m) => m.seq !== 6));
    expect(asker.have()).toEqual({ pa: 2 });
    expect(asker.beyond()).toEqual({ pa: [[5, 5], [9, 9]] });
    expect(holder.missingFor(asker.have(), asker.beyond()).map((m) => m.id)).toEqual(["pa:6"]);
    expect(holder.missingFor(holder.have(), holder.beyond())).toEqual([]);
    // Without beyond (an older client), everything past the gap, as before.
    expect(holder.missingFor(asker.have()).map((m) => m.id)).toEqual(["pa:5", "pa:6", "pa:9"]);
  });

  it("is capped at MAX_BEYOND_RANGES; a range past the cap is sent again (a duplicate, never a loss)", () => {
    const log = new MessageLog("pa", alice);
    const seqs: number[] = [];
    for (let seq = 2; seq < 2 * MAX_BEYOND_RANGES + 40; seq += 2) seqs.push(seq);
    expect(log.restore(seqs.map((seq) => ({ author: "pb", seq, clock: seq, time: 0, text: "", user: { username: "b" } })))).toBe(seqs.length);
    const beyond = log.beyond();
    expect(beyond.pb.slice(0, 2)).toEqual([[2, 2], [4, 4]]);
    expect(beyond.pb.length).toBe(MAX_BEYOND_RANGES);
    const resent = log.missingFor({}, { pb: seqs.map((s) => [s, s]) }).map((m) => m.seq);
    expect(resent).toEqual(seqs.filter((s) => s > 2 * MAX_BEYOND_RANGES));
  });
});

describe("what the log keeps per message", () => {
  it("have and beyond match a plain model for any arrival order, first-hand and relayed mixed", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 40; round += 1) {
      const log = new MessageLog("pz", bob);
      const held = new Set<number>();
      const own = new Set<number>();
      const seqs = Array.from({ length: 60 }, (_, i) => i + 1).filter(() => random() < 0.8);
      seqs.sort(() => random() - 0.5);
      if (round % 3 === 0) seqs.sort((a, b) => b - a); // newest first
      for (const seq of seqs) {
        const firstHand = random() < 0.5;
        const raw = { author: "pa", seq, clock: seq, time: seq, text: `m${seq}`, user: { username: "ann" } };
        log.receiveHistory([raw], firstHand ? "pa" : "pc", firstHand ? alice : bob);
        held.add(seq);
        if (firstHand) own.add(seq);
        if (random() < 0.2) {
          log.receiveHistory([raw], "pa", alice); // the author's own copy after a relayed one
          own.add(seq);
        }
      }
      const upto = (set: Set<number>) => {
        let n = 0;
        while (set.has(n + 1)) n += 1;
        return n;
      };
      const ranges = (set: Set<number>, floor: number) => {
        const out: [number, number][] = [];
        for (const seq of [...set].filter((s) => s > floor).sort((a, b) => a - b)) {
          const last = out[out.length - 1];
          if (last !== undefined && last[1] + 1 === seq) last[1] = seq;
          else out.push([seq, seq]);
        }
        return out;
      };
      expect(log.have()).toEqual(upto(held) > 0 ? { pa: upto(held) } : {});
      expect(log.have("pa")).toEqual(upto(own) > 0 ? { pa: upto(own) } : {});
      const past = ranges(held, upto(held));
      expect(log.beyond()).toEqual(past.length > 0 ? { pa: past } : {});
      const ownPast = ranges(own, upto(own));
      expect(log.beyond("pa")).toEqual(ownPast.length > 0 ? { pa: ownPast } : {});
    }
  });

  it("shares one identity object per author among relayed and restored messages", () => {
    const log = new MessageLog("pz", bob);
    const user = () => ({ username: "ann", display_name: "Ann", color: "red" });
    log.restore([1, 2].map((seq) => ({ author: "pa", seq, clock: seq, time: seq, text: "", user: user() })));
    log.receiveHistory([{ author: "pa", seq: 3, clock: 3, time: 3, text: "", user: user() }], "pc", bob);
    const [a, b, c] = log.messages;
    expect(b.user).toBe(a.user);
    expect(c.user).toBe(a.user);
    // Different fields, however they are split, are different identities.
    log.restore([
      { author: "pb", seq: 1, clock: 4, time: 4, text: "", user: { username: "ann", display_name: "Ann", color: "blue" } },
      { author: "pb", seq: 2, clock: 5, time: 5, text: "", user: { username: "an", name: "nann", display_name: "Ann", color: "red" } },
      { author: "pb", seq: 3, clock: 6, time: 6, text: "", user: { username: "ann", name: "ann", display_name: "Ann", color: "red" } },
    ]);
    const [, , , d, e, f] = log.messages;
    expect(d.user).not.toBe(a.user);
    expect(d.user.color).toBe("blue");
    expect(e.user).toEqual({ username: "an", name: "nann", display_name: "Ann", initials: null, color: "red", avatar_url: null });
    expect(f.user).toBe(a.user); // name defaults to the username: the same identity
  });
});
