// Reading a picked export file and the line that says what importing it did (js/historyFile.ts).

import { describe, expect, it } from "vitest";
import { toJson } from "./core/export";
import { FILE_LIMIT_BYTES } from "./core/files";
import { importRefusal, importSummary, readExport } from "./historyFile";

describe("readExport", () => {
  it("gives the entries and certificates of an export of this room", () => {
    const text = JSON.stringify(toJson("nb.ipynb", [{ id: "A:1" }], 5, [{ peer: "A" }]));
    expect(readExport(text, "nb.ipynb")).toEqual({ entries: [{ id: "A:1" }], certs: [{ peer: "A" }] });
    expect(readExport(JSON.stringify(toJson("nb.ipynb", [], 5)), "nb.ipynb").certs).toEqual([]);
  });

  it("refuses, saying why, a file that is not JSON, not an export, or from another room", () => {
    expect(() => readExport("# nb\n\nhello", "nb.ipynb")).toThrow("Not imported: the file is not JSON");
    expect(() => readExport('{"format": "slack"}', "nb.ipynb")).toThrow("Not imported: not an nbchat export");
    expect(() => readExport('{"format": "nbchat-export/1", "room": "nb.ipynb", "entries": 3}', "nb.ipynb")).toThrow(
      "needs a room name and a list of entries",
    );
    expect(() => readExport(JSON.stringify(toJson("other.ipynb", [], 5)), "nb.ipynb")).toThrow(
      "Not imported: this is the history of room “other.ipynb”, not of “nb.ipynb”.",
    );
  });

  it("refuses a file over the file limit before reading it", () => {
    expect(importRefusal(1000)).toBeNull();
    expect(importRefusal(FILE_LIMIT_BYTES + 1)).toMatch(/^Not imported: the file is .* the limit is .*\.$/);
  });
});

describe("importSummary", () => {
  const none = { messages: 0, amendments: 0, held: 0, unverified: 0, invalid: 0 };
  it("counts what came in, what was there, and what was left out and why", () => {
    expect(importSummary({ ...none, messages: 1 })).toBe("Imported 1 message.");
    expect(importSummary({ ...none, messages: 3, amendments: 2, held: 4 })).toBe(
      "Imported 3 messages and 2 edits and reactions. 4 already here.",
    );
    expect(importSummary({ ...none, held: 7 })).toBe("Nothing new imported. 7 already here.");
    expect(importSummary({ ...none, messages: 2, unverified: 1, invalid: 2 })).toBe(
      "Imported 2 messages. 1 entry left out: signature not verified (forged or altered). 2 entries left out: invalid.",
    );
  });
});
