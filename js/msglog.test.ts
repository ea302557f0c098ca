import { describe, expect, it } from "vitest";
import { MessageLog } from "./log";
import type { ChatMessage, Identity } from "./protocol";

const alice: Identity = { username: "a", name: "Alice", display_name: "Alice", initials: "A", color: "#f00", avatar_url: null };
const bob: Identity = { username: "b", name: "Bob", display_name: "Bob", initials: "B", color: null, avatar_url: null };

function msg(author: string, seq: number, clock: number, text = `${author}${seq}`, user = alice): ChatMessage {
  return { id: `${author}:${seq}`, author, seq, clock, time: 1000 + clock, text, user };
}

describe("MessageLog", () => {
  it("numbers own messages and advances the Lamport clock", () => {
    const log = new MessageLog();
    const first = log.compose("pa", alice, "hi", 1);
    const second = log.compose("pa", alice, "again", 2);
    expect([first.id, first.seq, first.clock]).toEqual(["pa:1", 1, 1]);
    expect([second.id, second.seq, second.clock]).toEqual(["pa:2", 2, 2]);
  });

  it("sends past the highest clock seen", () => {
    const log = new MessageLog();
    log.receive(msg("pb", 1, 41));
    expect(log.compose("pa", alice, "reply", 5).clock).toBe(42);
  });

  it("orders by clock then author regardless of arrival order", () => {
    const log = new MessageLog();
    for (const m of [msg("zed", 1, 3), msg("amy", 1, 3), msg("bob", 1, 1), msg("amy", 2, 7)]) log.receive(m);
    expect(log.messages().map((m) => m.id)).toEqual(["bob:1", "amy:1", "zed:1", "amy:2"]);
  });

  it("ignores duplicates, and a forged id never replaces the original", () => {
    const log = new MessageLog();
    expect(log.receive(msg("pa", 1, 1, "original"))).not.toBeNull();
    expect(log.receive(msg("pa", 1, 9, "forged"))).toBeNull();
    expect(log.messages().map((m) => m.text)).toEqual(["original"]);
    expect(log.size).toBe(1);
  });

  it("rejects malformed messages and ids that do not match author:seq", () => {
    const log = new MessageLog();
    expect(log.receive({ id: "x" })).toBeNull();
    expect(log.receive({ ...msg("pa", 1, 1), id: "pb:1" })).toBeNull();
    expect(log.receive({ ...msg("pa", 1, 1), seq: 0, id: "pa:0" })).toBeNull();
    expect(log.receive({ ...msg("pa", 1, 1), author: "bad id!" })).toBeNull();
    expect(log.receive({ ...msg("pa", 1, 1), text: 5 })).toBeNull();
    expect(log.size).toBe(0);
  });

  it("stamps direct messages with the connection's peer id and bound identity", () => {
    const log = new MessageLog();
    const claimed = { ...msg("victim", 3, 2, "I am Alice", alice), id: "victim:3" };
    const stored = log.receiveDirect(claimed, "pb", bob);
    expect(stored).toMatchObject({ id: "pb:3", author: "pb", seq: 3, user: bob, text: "I am Alice" });
    expect(log.has("victim:3")).toBe(false);
  });

  it("reports the highest contiguous seq per author", () => {
    const log = new MessageLog();
    for (const m of [msg("pa", 1, 1), msg("pa", 2, 2), msg("pa", 4, 4), msg("pb", 2, 5)]) log.receive(m);
    expect(log.have()).toEqual({ pa: 2 });
    log.receive(msg("pa", 3, 3));
    expect(log.have()).toEqual({ pa: 4 });
  });

  it("answers a sync with everything beyond the peer's vector, in order", () => {
    const log = new MessageLog();
    for (const m of [msg("pa", 1, 1), msg("pb", 1, 2), msg("pa", 2, 3), msg("pb", 2, 4)]) log.receive(m);
    expect(log.missingFor({ pa: 1 }).map((m) => m.id)).toEqual(["pb:1", "pa:2", "pb:2"]);
    expect(log.missingFor({}).length).toBe(4);
    expect(log.missingFor({ pa: 2, pb: 2 })).toEqual([]);
    expect(log.missingFor("junk").length).toBe(4);
  });

  it("converges: two logs exchanging missing messages hold the same order", () => {
    const a = new MessageLog();
    const b = new MessageLog();
    a.compose("pa", alice, "a1", 1);
    b.compose("pb", bob, "b1", 1);
    a.compose("pa", alice, "a2", 2);
    for (const m of b.missingFor(a.have())) a.receive(m);
    for (const m of a.missingFor(b.have())) b.receive(m);
    expect(a.messages().map((m) => m.id)).toEqual(b.messages().map((m) => m.id));
    expect(a.messages().map((m) => m.id)).toEqual(["pa:1", "pb:1", "pa:2"]);
  });

  it("handles 10,000 messages quickly", () => {
    const log = new MessageLog();
    const started = performance.now();
    for (let i = 1; i <= 10_000; i += 1) log.receive(msg(i % 2 ? "pa" : "pb", Math.ceil(i / 2), i));
    expect(log.size).toBe(10_000);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
