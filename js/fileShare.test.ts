// Two FileShares wired back to back (frames delivered as the data channel would): the
// transfer, a cancel midway, and what a receiver refuses.
import { describe, expect, it } from "vitest";
import { FILE_PART_BYTES, type FileMeta } from "./core/files";
import type { ChatFrame } from "./core/frames";
import { FileShare, describeFile } from "./fileShare";
import type { ChatMessage } from "./protocol";

const user = { username: "a", name: "a", display_name: "a", initials: null, color: null, avatar_url: null };

function pair(options: { pauseAfter?: number } = {}) {
  let sentParts = 0;
  let paused = false;
  const frames: { from: string; frame: ChatFrame }[] = [];
  const links = new Map<string, FileShare>();
  const make = (self: string, other: string): FileShare =>
    new FileShare({
      selfId: () => self,
      isOpen: () => true,
      buffered: () => (paused ? 2_000_000 : 0),
      send: (_to, frame) => {
        frames.push({ from: self, frame });
        if (frame.type === "file-part" && options.pauseAfter !== undefined && ++sentParts === options.pauseAfter) paused = true;
        queueMicrotask(() => links.get(other)?.onFrame(self, frame));
        return true;
      },
    });
  const a = make("A", "B");
  const b = make("B", "A");
  links.set("A", a);
  links.set("B", b);
  return { a, b, frames, resume: () => (paused = false) };
}

async function card(bytes: Uint8Array, name = "data.bin"): Promise<{ message: ChatMessage; meta: FileMeta }> {
  const { meta, text } = await describeFile({ name, type: "application/x-test" }, bytes);
  return { meta, message: { id: "A:1", author: "A", seq: 1, clock: 1, time: 1, text, user, file: meta } };
}

const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !check(); i += 1) await new Promise((r) => setTimeout(r, 2));
  expect(check()).toBe(true);
};

describe("FileShare", () => {
  it("streams a file on request; the receiver checks it and offers it", async () => {
    const { a, b } = pair();
    const bytes = new Uint8Array(3 * FILE_PART_BYTES + 17).map((_x, i) => (i * 7919) % 251);
    const { message, meta } = await card(bytes, "../../report.csv");
    expect(meta.name).toBe("report.csv");
    a.offer(message, bytes);
    b.onMessages([message]);
    await until(() => b.transfer("A:1")?.state === "complete");
    expect(b.transfer("A:1")).toMatchObject({ done: bytes.length, size: bytes.length, error: null });
    expect(b.transfer("A:1")?.url).toMatch(/^blob:/);
  });

  it("a cancel midway leaves the receiver cancelled, nothing offered, and stops the sender", async () => {
    const { a, b, frames, resume } = pair({ pauseAfter: 2 });
    const bytes = new Uint8Array(10 * FILE_PART_BYTES);
    const { message } = await card(bytes);
    a.offer(message, bytes);
    b.onMessages([message]);
    await until(() => (b.transfer("A:1")?.done ?? 0) > 0);
    b.cancel("A:1");
    expect(b.transfer("A:1")).toMatchObject({ state: "cancelled", url: null });
    await until(() => frames.some((f) => f.from === "B" && f.frame.type === "file-cancel"));
    const parts = frames.filter((f) => f.frame.type === "file-part").length;
    resume(); // the link drains: a sender that had not stopped would send the rest now
    await new Promise((r) => setTimeout(r, 30)); // its pacing loop looks again within 5 ms
    expect(frames.filter((f) => f.frame.type === "file-part").length).toBe(parts);
    expect(b.transfer("A:1")?.state).toBe("cancelled");
  });

  it("a part from someone else, or that does not fit, or a wrong hash never completes a file", async () => {
    const { b } = pair();
    const bytes = new Uint8Array(100);
    const { message } = await card(bytes);
    b.onMessages([message]);
    expect(b.wantsPart("M", "A:1")).toBe(false);
    b.onFrame("M", { type: "file-part", file: "A:1", index: 0, count: 1, data: btoa("\x00".repeat(100)) });
    expect(b.transfer("A:1")?.state).toBe("waiting");
    b.onFrame("A", { type: "file-part", file: "A:1", index: 0, count: 1, data: btoa("\x01".repeat(100)) });
    await until(() => b.transfer("A:1")?.state === "failed");
    expect(b.transfer("A:1")?.error).toMatch(/SHA-256/);
    expect(b.transfer("A:1")?.url).toBeNull();
  });
});

describe("FileShare after a dropped link", () => {
  it("keeps what arrived and asks for the rest when the link is back", async () => {
    const { a, b, frames, resume } = pair({ pauseAfter: 3 });
    const bytes = new Uint8Array(8 * FILE_PART_BYTES).map((_x, i) => (i * 7919) % 251);
    const { message } = await card(bytes);
    a.offer(message, bytes);
    b.onMessages([message]);
    await until(() => b.transfer("A:1")?.done === 3 * FILE_PART_BYTES);
    // The link drops: the sender stops, the receiver pauses with 3 parts.
    a.onLinkClosed("B");
    b.onLinkClosed("A");
    expect(b.transfer("A:1")).toMatchObject({ state: "unavailable", done: 3 * FILE_PART_BYTES });
    resume();
    b.onLinkOpen("A");
    await until(() => b.transfer("A:1")?.state === "complete");
    const gets = frames.filter((f) => f.frame.type === "file-get").map((f) => f.frame);
    expect(gets).toEqual([
      { type: "file-get", file: "A:1" },
      { type: "file-get", file: "A:1", from: 3 },
    ]);
    // Parts 0-2 went once: only the rest was sent again.
    const indices = frames.filter((f) => f.frame.type === "file-part").map((f) => (f.frame as { index: number }).index);
    expect(indices.filter((i) => i < 3)).toEqual([0, 1, 2]);
  });
});
