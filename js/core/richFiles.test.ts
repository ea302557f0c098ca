// Rich messages and shared files: the golden fixtures shared with the Python core.

import { describe, expect, it } from "vitest";
import constants from "../../tests/fixtures/core_constants.json";
import filesCases from "../../tests/fixtures/files.json";
import richCases from "../../tests/fixtures/rich_cases.json";
import * as files from "./files";
import { dumps } from "./frames";
import { MessageLog, normalizeIdentity } from "./msglog";
import * as rich from "./rich";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;
const sha256 = async (bytes: Uint8Array): Promise<string> =>
  Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes))), (b) => b.toString(16).padStart(2, "0")).join("");
const hexBytes = (hex: string): Uint8Array => new Uint8Array(hex.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);

describe("rich messages (rich_cases.json)", () => {
  it("constants match core_constants.json", () => {
    expect(constants.rich).toEqual({
      RICH_MIME_TYPES: [...rich.RICH_MIME_TYPES],
      RICH_LIMIT_BYTES: rich.RICH_LIMIT_BYTES,
      MAX_RICH_BYTES: rich.MAX_RICH_BYTES,
    });
    expect(constants.files).toEqual({
      FILE_LIMIT_BYTES: files.FILE_LIMIT_BYTES,
      FILE_PART_BYTES: files.FILE_PART_BYTES,
      MAX_FILE_NAME: files.MAX_FILE_NAME,
    });
  });
  it.each((richCases.clean as Any[]).map((c) => [c.name, c]))("clean: %s", (_name, c: Any) => {
    const result = rich.cleanMime(c.value, c.limit ?? rich.MAX_RICH_BYTES);
    expect(result).toEqual(c.result);
    if (result !== null) expect(JSON.stringify(result)).toBe(JSON.stringify(c.result)); // same key order
  });
  it("sizes, best types and errors", () => {
    for (const c of richCases.size as Any[]) expect(rich.richSize(c.mime)).toBe(c.size);
    for (const c of richCases.best_type as Any[]) expect(rich.bestType(c.mime)).toBe(c.result);
    for (const c of richCases.format_size) expect(rich.formatSize(c.size)).toBe(c.text);
    for (const c of richCases.size_error) expect(rich.sizeError(c.what, c.size, c.limit)).toBe(c.text);
  });
  it("the log keeps valid rich parts and always the text", () => {
    const c = richCases.messages as Any;
    const log = new MessageLog(c.self.peer_id, normalizeIdentity(c.self.user));
    for (const raw of c.received) log.receiveDirect(c.from, normalizeIdentity(c.user), raw);
    expect(log.messages).toEqual(c.result);
    expect(dumps({ type: "history", messages: [...log.messages] })).toBe(c.wire);
  });
});

describe("shared files (files.json)", () => {
  it.each((filesCases.names as Any[]).map((c) => [JSON.stringify(c.name).slice(0, 40), c]))("name %s", (_n, c: Any) => {
    expect(files.cleanFileName(c.name)).toBe(c.result);
  });
  it.each((filesCases.meta as Any[]).map((c) => [c.name, c]))("card: %s", (_name, c: Any) => {
    expect(files.cleanFileMeta(c.value, c.limit ?? files.FILE_LIMIT_BYTES)).toEqual(c.result);
  });
  it("splits into parts and back", async () => {
    for (const c of filesCases.part_count) expect(files.partCount(c.size)).toBe(c.count);
    const data = hexBytes(filesCases.split.data_hex);
    const parts = Array.from({ length: files.partCount(data.length) }, (_x, i) => files.filePart(data, i));
    expect(parts).toEqual(filesCases.split.parts);
    expect(await sha256(data)).toBe(filesCases.split.sha256);
  });
  it.each((filesCases.assemble as Any[]).map((c) => [c.name, c]))("assemble: %s", async (_name, c: Any) => {
    const assembler = new files.FileAssembler(c.size);
    const results: string[] = [];
    for (const [index, count, data] of c.feeds) {
      try {
        assembler.feed(index, count, data);
        results.push("ok");
      } catch (error) {
        if (!(error instanceof files.InvalidPart)) throw error;
        results.push(`error: ${error.message}`);
      }
    }
    expect(results).toEqual(c.results);
    expect([assembler.received, assembler.done]).toEqual([c.received, c.done]);
    expect(assembler.nextMissing).toBe(c.next_missing);
    if (c.done) expect(await sha256(assembler.result())).toBe(c.sha256);
  });
});
