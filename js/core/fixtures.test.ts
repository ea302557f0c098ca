// The golden fixtures in tests/fixtures/ against the TypeScript core; tests/core/test_fixtures.py
// runs the same files against the Python core, so a change on one side only fails.

import { describe, expect, it } from "vitest";
import chatFrames from "../../tests/fixtures/chat_frames.json";
import chunkingCases from "../../tests/fixtures/chunking.json";
import commCases from "../../tests/fixtures/comm.json";
import constants from "../../tests/fixtures/core_constants.json";
import ratelimitCases from "../../tests/fixtures/ratelimit.json";
import sessionCases from "../../tests/fixtures/session.json";
import * as chunking from "./chunking";
import * as comm from "./comm";
import * as frames from "./frames";
import * as msglog from "./msglog";
import * as rateLimit from "./rateLimit";
import * as session from "./session";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;

const camel = (name: string): string => name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
const byName = <T extends { name: string }>(cases: T[]): [string, T][] => cases.map((c) => [c.name, c]);

describe("constants both cores hold", () => {
  it("match core_constants.json", () => {
    expect(constants.frames).toEqual({
      MAX_MESSAGE_BYTES: frames.MAX_MESSAGE_BYTES,
      MAX_SAFE_INTEGER: frames.MAX_SAFE_INTEGER,
      CHUNK_ID_MAX_LENGTH: frames.CHUNK_ID_MAX_LENGTH,
      FILE_ID_MAX_LENGTH: frames.FILE_ID_MAX_LENGTH,
      ChatFrameType: frames.ChatFrameType,
    });
    expect(constants.chunking).toEqual({
      CHUNK_THRESHOLD_BYTES: chunking.CHUNK_THRESHOLD_BYTES,
      CHUNK_SLICE_BYTES: chunking.CHUNK_SLICE_BYTES,
      MAX_CHUNKED_IN_FLIGHT: chunking.MAX_CHUNKED_IN_FLIGHT,
      MAX_CHUNK_COUNT: chunking.MAX_CHUNK_COUNT,
      "max_chunked_bytes(65536)": chunking.maxChunkedBytes(65536),
      "max_chunked_bytes(4096)": chunking.maxChunkedBytes(4096),
    });
    expect(constants.ratelimit).toEqual({
      MESSAGE_RATE: rateLimit.MESSAGE_RATE,
      FRAME_RATE: rateLimit.FRAME_RATE,
      FLOOD_WARNING_MS: rateLimit.FLOOD_WARNING_MS,
    });
    expect(constants.msglog).toEqual({
      MAX_CLOCK_STEP: msglog.MAX_CLOCK_STEP,
      MAX_TIME: msglog.MAX_TIME,
      MAX_BEYOND_RANGES: msglog.MAX_BEYOND_RANGES,
    });
    expect(constants.session).toEqual({ ICE_TRANSPORT_POLICIES: [...session.ICE_TRANSPORT_POLICIES] });
    expect(constants.comm).toEqual({ CommType: comm.CommType });
  });
});

describe("chat frames (chat_frames.json)", () => {
  it.each(byName(chatFrames.parse as Any[]))("parse: %s", (_name, c) => {
    expect(frames.parseChatFrame(c.value)).toEqual(c.parsed);
  });
  it.each(byName(chatFrames.encode as Any[]))("encode: %s", (_name, c) => {
    expect(frames.dumps(c.frame)).toBe(c.text);
    expect(frames.encode(c.frame)).toEqual(new TextEncoder().encode(c.text));
  });
});

describe("chunking (chunking.json)", () => {
  it.each((chunkingCases.slice_text as Any[]).map((c) => [JSON.stringify(c.text), c]))("slice_text %s", (_name, c) => {
    expect(chunking.sliceText(c.text, c.budget)).toEqual(c.slices);
  });
  it.each(byName(chunkingCases.split as Any[]))("split: %s", (_name, c) => {
    let counter = 0;
    const parts = chunking.split(c.frame, () => `c-B-${++counter}`);
    expect(parts.map((p) => frames.dumps(p))).toEqual(c.frames.map((p: unknown) => frames.dumps(p)));
    for (const part of parts) expect(frames.encode(part).length).toBeLessThanOrEqual(chunking.CHUNK_THRESHOLD_BYTES);
  });
  it.each(byName(chunkingCases.reassembly as Any[]))("reassembly: %s", (_name, c) => {
    const limits = Object.fromEntries(Object.entries(c.limits ?? {}).map(([k, v]) => [camel(k), v]));
    const assembler = new chunking.ChunkAssembler(limits);
    for (const step of c.steps) {
      let result: unknown;
      try {
        const whole = assembler.feed(step.chunk);
        result = whole === null ? "pending" : { frame: whole };
      } catch (error) {
        expect(error).toBeInstanceOf(frames.InvalidFrame);
        result = { error: (error as Error).message };
      }
      expect(result).toEqual(step.result);
    }
    expect(assembler.pending).toBe(c.pending);
  });
});

describe("rate limits (ratelimit.json)", () => {
  it.each(byName(ratelimitCases.traces as Any[]))("%s", (_name, c) => {
    let now: number = c.steps[0].t;
    const limits = new rateLimit.IncomingLimits(() => now);
    for (const step of c.steps) {
      now = step.t;
      if ("report" in step) {
        expect(limits.report()).toBe(step.report);
      } else {
        let accepted = 0;
        for (let i = 0; i < step.count; i += 1) if (limits.accept(step.kind === "message")) accepted += 1;
        expect(accepted).toBe(step.accepted);
      }
    }
  });
});

describe("session config (session.json)", () => {
  it.each(byName(sessionCases.valid as Any[]))("valid: %s", (_name, c) => {
    const parsed = session.parseSessionConfig(c.config);
    expect(parsed).toEqual(c.parsed);
    expect(Object.keys(parsed).sort()).toEqual(Object.keys(c.parsed).sort());
  });
  it.each(byName(sessionCases.invalid as Any[]))("invalid: %s", (_name, c) => {
    expect(() => session.parseSessionConfig(c.config)).toThrow(session.InvalidSession);
  });
});

describe("comm messages (comm.json)", () => {
  it.each(byName(commCases.from_browser as Any[]))("from the browser: %s", (_name, c) => {
    expect(comm.parseFromBrowser(c.value)).toEqual(c.parsed);
  });
  it.each(byName(commCases.from_kernel as Any[]))("from the kernel: %s", (_name, c) => {
    expect(comm.parseFromKernel(c.value)).toEqual(c.parsed);
  });
  it.each((commCases.build as Any[]).map((c) => [c.builder, c]))("build %s", (_name, c) => {
    const builder = (comm as Any)[camel(c.builder)] as (...args: unknown[]) => unknown;
    expect(frames.dumps(builder(...c.args))).toBe(c.text);
  });
});
