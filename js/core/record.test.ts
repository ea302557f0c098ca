// Off the record: the golden cases of tests/fixtures/record_cases.json against the
// TypeScript core (tests/core/test_record.py runs them against Python), in several arrival orders.

import { describe, expect, it } from "vitest";
import fixture from "../../tests/fixtures/record_cases.json";
import { Timeline } from "./edits";
import { InvalidMessage, MessageLog, normalizeIdentity } from "./msglog";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;

const OBSERVER = normalizeIdentity({ username: "zoe" });
const byName = <T extends { name: string }>(cases: T[]): [string, T][] => cases.map((c) => [c.name, c]);

function fold(entries: unknown[]): { record: { id: string; on: boolean } | null; off_record: string[] } {
  const log = new MessageLog("Z", OBSERVER);
  const timeline = new Timeline();
  for (const raw of entries) {
    const { added, rejected } = log.receiveHistory([raw]);
    expect(rejected).toEqual([]);
    for (const entry of added) timeline.add(entry);
  }
  const record = timeline.record();
  return {
    record: record === null ? null : { id: record.id, on: record.on as boolean },
    off_record: log.messages
      .filter((m) => timeline.offRecord(m.id))
      .map((m) => m.id)
      .sort(),
  };
}

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

describe("off the record (record_cases.json)", () => {
  it.each(byName(fixture.cases as Any[]))("%s, in any arrival order", (_name, c) => {
    expect(fold(c.entries)).toEqual(c.expect);
    expect(fold([...c.entries].reverse())).toEqual(c.expect);
    for (let seed = 1; seed <= 5; seed += 1) expect(fold(shuffled(c.entries, seed))).toEqual(c.expect);
  });

  it.each(byName(fixture.invalid as Any[]))("the log refuses %s", (_name, c) => {
    const { added, rejected } = new MessageLog("Z", OBSERVER).receiveHistory([c.entry]);
    expect(added).toEqual([]);
    expect(rejected).toHaveLength(1);
  });

  it.each(byName(fixture.valid as Any[]))("the log keeps %s", (_name, c) => {
    const { added, rejected } = new MessageLog("Z", OBSERVER).receiveHistory([c.entry]);
    expect(rejected).toEqual([]);
    expect(added).toEqual([c.stored]);
  });

  it("compose writes a switch and a flagged message", () => {
    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const sw = log.compose("", 1, null, null, { kind: "record", on: false });
    const message = log.compose("between us", 2, null, null, { off_record: true });
    const timeline = new Timeline();
    timeline.add(sw);
    timeline.add(message);
    expect(timeline.record()).toBe(sw);
    expect(timeline.offRecord(message.id)).toBe(true);
    expect(timeline.state(sw.id)).toBeNull();
    expect(timeline.offRecord(sw.id)).toBe(false);
    expect(() => log.compose("", 3, null, null, { kind: "record" })).toThrow(InvalidMessage);
  });
});
