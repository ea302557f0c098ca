// The golden cases of tests/fixtures/edits_cases.json against the TypeScript core
// (tests/core/test_edits.py runs them against Python), in several arrival orders.

import { describe, expect, it } from "vitest";
import fixture from "../../tests/fixtures/edits_cases.json";
import { type MessageState, Timeline } from "./edits";
import { InvalidMessage, MessageLog, normalizeIdentity } from "./msglog";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;

const OBSERVER = normalizeIdentity({ username: "zoe" });
const byName = <T extends { name: string }>(cases: T[]): [string, T][] => cases.map((c) => [c.name, c]);

function fold(entries: unknown[]): [MessageState[], string[]] {
  const log = new MessageLog("Z", OBSERVER);
  const timeline = new Timeline();
  for (const raw of entries) {
    const { added, rejected } = log.receiveHistory([raw]);
    expect(rejected).toEqual([]);
    for (const entry of added) timeline.add(entry);
  }
  const shown = log.messages.map((m) => timeline.state(m.id)).filter((s): s is MessageState => s !== null);
  return [shown, timeline.refused()];
}

/** A deterministic shuffle (a linear congruential generator), so failures reproduce. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i -= 1) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe("edits, deletes, reactions and replies (edits_cases.json)", () => {
  it.each(byName(fixture.cases as Any[]))("%s, in any arrival order", (_name, c) => {
    const expected = [c.expect.shown, c.expect.refused];
    expect(fold(c.entries)).toEqual(expected);
    expect(fold([...c.entries].reverse())).toEqual(expected);
    for (let seed = 1; seed <= 5; seed += 1) expect(fold(shuffled(c.entries, seed))).toEqual(expected);
  });

  it.each(byName(fixture.invalid as Any[]))("the log refuses %s", (_name, c) => {
    const { added, rejected } = new MessageLog("Z", OBSERVER).receiveHistory([c.entry]);
    expect(added).toEqual([]);
    expect(rejected).toHaveLength(1);
  });

  it.each(byName(fixture.valid as Any[]))("the log keeps the fields: %s", (_name, c) => {
    const { added, rejected } = new MessageLog("Z", OBSERVER).receiveHistory([c.entry]);
    expect(rejected).toEqual([]);
    expect(added).toEqual([c.stored]);
  });

  it("compose writes amendments and replies and refuses bad ones", () => {
    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const first = log.compose("helo", 1);
    const edit = log.compose("hello", 2, null, null, { kind: "edit", target: first.id });
    const reply = log.compose("and you?", 3, null, null, { reply_to: first.id });
    const timeline = new Timeline();
    for (const entry of [first, edit, reply]) timeline.add(entry);
    expect(timeline.state(first.id)).toMatchObject({ text: "hello", edited: 2 });
    expect(timeline.state(edit.id)).toBeNull();
    expect(timeline.state(reply.id)?.reply_to).toBe(first.id);
    expect(() => log.compose("", 4, null, null, { kind: "react", target: first.id, emoji: "👍" })).toThrow(InvalidMessage);
    expect(log.size).toBe(3);
  });
});

describe("Timeline.entry", () => {
  it("is the newest copy held for an id", () => {
    const timeline = new Timeline();
    const user = normalizeIdentity({ username: "ann" });
    const relayed = { id: "a:1", author: "a", seq: 1, clock: 1, time: 1, text: "x", user };
    const own = { ...relayed, text: "y" };
    expect(timeline.entry("a:1")).toBeUndefined();
    timeline.add(relayed);
    expect(timeline.entry("a:1")).toBe(relayed);
    timeline.add(own); // the author's own copy replaces a relayed one
    expect(timeline.entry("a:1")).toBe(own);
  });
});
