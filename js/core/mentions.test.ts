// tests/fixtures/mentions.json against the TypeScript core (tests/core/test_mentions.py runs the
// same cases against Python).

import { describe, expect, it } from "vitest";
import fixture from "../../tests/fixtures/mentions.json";
import { TypingTracker, findMentions, mentions, typingLabel } from "./mentions";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;

describe("mentions and typing (mentions.json)", () => {
  it.each(fixture.mentions.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(mentions(c.text, fixture.usernames)).toEqual(c.expect);
  });

  it.each(fixture.labels.map((c) => [c.names.length, c] as const))("label for %i", (_n, c) => {
    expect(typingLabel(c.names)).toBe(c.label);
  });

  it.each((fixture.tracker as Any[]).map((c) => [c.name, c] as const))("tracker: %s", (_name, c) => {
    const tracker = new TypingTracker();
    for (const op of c.ops) {
      if (op.op === "typing") {
        const changed = tracker.typing(op.peer, op.name, op.now, op.on ?? true);
        if (op.changed !== undefined) expect(changed, JSON.stringify(op)).toBe(op.changed);
      } else if (op.op === "stopped") {
        const changed = tracker.stopped(op.peer);
        if (op.changed !== undefined) expect(changed, JSON.stringify(op)).toBe(op.changed);
      }
      else if (op.op === "names") expect(tracker.names(op.now)).toEqual(op.expect);
      else expect(tracker.nextChange()).toBe(op.expect);
    }
  });

  it("gives UTF-16 offsets to highlight", () => {
    const text = "😀 hi @Ana and @bob";
    const found = findMentions(text, ["ana", "bob"]);
    expect(found.map((m) => text.slice(m.start, m.end))).toEqual(["@Ana", "@bob"]);
    expect(found.map((m) => m.username)).toEqual(["ana", "bob"]);
  });
});
