// Which signature checks leave the page's thread (js/verifier.ts); the Worker itself runs in a
// real browser (bench/verify_catchup.py, tests/e2e signed cases).

import { describe, expect, it } from "vitest";
import { QUIET_MS, SMALL_BATCH, pageVerifier, toWorker, workerVerifier } from "./verifier";
import { generateKey, publicKey, signEntry, entryBytes, b64decode } from "./core/signing";

describe("verifier", () => {
  it("keeps live messages and the first batch of a burst on the page's thread, the rest go to the Worker", () => {
    expect(toWorker(1, -Infinity, 0)).toBe(false); // a live message
    expect(toWorker(SMALL_BATCH, 0, 1)).toBe(false);
    expect(toWorker(100, -Infinity, 1000)).toBe(false); // the newest screenful
    expect(toWorker(100, 1000, 1005)).toBe(true); // the batches right behind it
    expect(toWorker(100, 1000, 1000 + QUIET_MS)).toBe(false); // a new burst
  });

  it("checks on this thread where no Worker can be made, with the same answers", async () => {
    expect(workerVerifier(8)).toBeNull(); // node has no Worker
    expect(workerVerifier(2)).toBeNull(); // two cores: the Worker would compete with the page
    const pair = await generateKey();
    const key = await publicKey(pair);
    const entry = { author: "A", seq: 1, clock: 1, time: 1, text: "hi" };
    const sig = b64decode(await signEntry(pair.privateKey, "r", entry));
    const data = entryBytes("r", entry);
    expect(await pageVerifier()([{ key, sig, data }, { key, sig, data: entryBytes("r", { ...entry, text: "ho" }) }])).toEqual([true, false]);
  });
});
