// tests/fixtures/export_cases.json against the TypeScript core (tests/core/test_export.py runs the
// same cases against Python).

import { describe, expect, it } from "vitest";
import fixture from "../../tests/fixtures/export_cases.json";
import { type MessageState, Timeline } from "./edits";
import { InvalidExport, exportCerts, fromJson, toJson, toMarkdown } from "./export";
import { dumps } from "./frames";
import { MessageLog, normalizeIdentity } from "./msglog";

function heldLog(): MessageLog {
  const log = new MessageLog("Z", normalizeIdentity({ username: "zoe" }));
  const { added, rejected } = log.receiveHistory(fixture.entries);
  expect(rejected).toEqual([]);
  expect(added).toHaveLength(fixture.entries.length);
  return log;
}

describe("export (export_cases.json)", () => {
  it("shows each message as folded, in Markdown", () => {
    const log = heldLog();
    const timeline = new Timeline();
    for (const entry of log.messages) timeline.add(entry);
    const states = log.messages.map((m) => timeline.state(m.id)).filter((s): s is MessageState => s !== null);
    expect(toMarkdown(fixture.room, states, fixture.exported)).toBe(fixture.markdown);
  });

  it("round-trips JSON into an empty log", () => {
    const log = heldLog();
    const [room, entries] = fromJson(JSON.parse(dumps(toJson(fixture.room, log.messages, fixture.exported))));
    const again = new MessageLog("Y", normalizeIdentity({ username: "yan" }));
    expect(room).toBe(fixture.room);
    expect(again.restore(entries)).toBe(log.size);
    expect(again.messages).toEqual(log.messages);
  });

  it("carries the authors' certificates when given, none otherwise", () => {
    const certs = [{ peer: "A", key: "k", user: { username: "alice" }, room: fixture.room, sig: "s" }];
    const document = JSON.parse(dumps(toJson(fixture.room, [], fixture.exported, certs)));
    expect(exportCerts(document)).toEqual(certs);
    expect(fromJson(document)).toEqual([fixture.room, []]);
    expect(exportCerts(toJson(fixture.room, [], fixture.exported))).toEqual([]);
    expect("certs" in toJson(fixture.room, [], fixture.exported)).toBe(false);
  });

  it("writes a list row that nobody amended as it is (absent fields: not edited, no reactions)", () => {
    const log = heldLog();
    const plain = log.messages.filter((m) => m.kind === undefined && m.reply_to === undefined)[0];
    const markdown = toMarkdown(fixture.room, [plain], fixture.exported);
    expect(markdown).toContain(plain.text);
    expect(markdown).not.toContain("edited");
  });

  it.each(fixture.invalid.map((c) => [c.name, c] as const))("says what is wrong: %s", (_name, c) => {
    expect(() => fromJson(c.document)).toThrow(InvalidExport);
    expect(() => fromJson(c.document)).toThrow(/nbchat export/);
  });
});
