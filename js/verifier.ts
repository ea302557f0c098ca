// Where signatures are checked (docs/protocol.md §4, *Signed entries*): a dedicated Worker, so
// a late joiner's 10,000 Ed25519 checks (Chromium runs each on the calling thread, ~70 µs
// here) leave the page's thread to receive, store and render. Only the thread changes: the
// worker answers valid/invalid for exactly the (key, signature, bytes) core/signing built, and
// anything it cannot answer is checked on this thread instead (core/signing's verifyHere).
// Checks are asked for as frames arrive (js/authorship.ts pipelines them), so frames do not
// wait for each other's round trips. Small batches (live messages) and the first big batch of
// a burst (the newest screenful of a history) stay on this thread: no hop where it is felt.

import type { SignatureCheck, Verifier } from "./core/signing";
import { b64decode, verifyHere } from "./core/signing";

/** The worker: keys imported once; one message per batch, answered (in order) with one flag per check. */
const SOURCE = `"use strict";
const ED25519 = { name: "Ed25519" };
const keys = new Map();
function key(text, raw) {
  let found = keys.get(text);
  if (found === undefined) {
    found = raw.length === 32 ? crypto.subtle.importKey("raw", raw, ED25519, false, ["verify"]).catch(() => null) : Promise.resolve(null);
    if (keys.size > 4096) keys.clear();
    keys.set(text, found);
  }
  return found;
}
// One batch after another: a batch's answer goes before the next batch's checks start (all
// started at once, the first answer would wait for every check queued behind it).
let queue = Promise.resolve();
onmessage = (event) => {
  queue = queue.then(() => check(event.data));
};
async function check({ id, keyTexts, keyBytes, keyOf, sigs, data, ends }) {
  try {
    const imported = await Promise.all(keyTexts.map((text, i) => key(text, keyBytes[i])));
    const ok = await Promise.all(Array.from(keyOf, (k, i) => {
      const publicKey = imported[k];
      if (publicKey === null) return false;
      const from = i === 0 ? 0 : ends[i - 1];
      return crypto.subtle.verify(ED25519, publicKey, sigs.subarray(64 * i, 64 * i + 64), data.subarray(from, ends[i])).catch(() => false);
    }));
    postMessage({ id, ok });
  } catch (error) {
    postMessage({ id, error: String(error) });
  }
}
`;

/** How long a batch may wait for the worker before it is checked here instead. */
const WORKER_PATIENCE_MS = 10_000;
/** Batches this small are checked here: a live message's one check (~70 µs) costs less than
 *  a round trip to another thread, which would delay it on its way to the screen. */
export const SMALL_BATCH = 8;
/** The first big batch after this long without one is checked here too: the newest
 *  screenful of a joiner's history shows without a thread hop; the batches right behind it go
 *  to the Worker. */
export const QUIET_MS = 250;

/** Whether a batch of `size` checks goes to the Worker, given when the last big batch came
 *  (`lastBig`, ms; -Infinity for never) and `now`. */
export function toWorker(size: number, lastBig: number, now: number): boolean {
  return size > SMALL_BATCH && now - lastBig < QUIET_MS;
}

/** Cores below this and the checks stay on the page's thread: with two, a Worker competes
 *  with the page for the same core (measured: the catch-up got slower, docs/benchmarks.md). */
export const WORKER_MIN_CORES = 4;

/** A Verifier backed by a Worker, or null where no Worker can be made (or would not pay). */
export function workerVerifier(cores: number = globalThis.navigator?.hardwareConcurrency ?? 0): Verifier | null {
  if (cores < WORKER_MIN_CORES) return null;
  if (typeof Worker === "undefined" || typeof Blob === "undefined" || typeof URL.createObjectURL !== "function") return null;
  let worker: Worker;
  try {
    worker = new Worker(URL.createObjectURL(new Blob([SOURCE], { type: "text/javascript" })));
  } catch {
    return null;
  }
  type Waiting = { checks: readonly SignatureCheck[]; resolve: (ok: boolean[] | Promise<boolean[]>) => void; timer: ReturnType<typeof setTimeout> };
  const waiting = new Map<number, Waiting>();
  let broken = false;
  let next = 0;
  const here = (id: number): void => {
    const batch = waiting.get(id);
    if (batch === undefined) return;
    waiting.delete(id);
    clearTimeout(batch.timer);
    batch.resolve(verifyHere(batch.checks));
  };
  worker.onmessage = (event: MessageEvent<{ id: number; ok?: unknown }>) => {
    const batch = waiting.get(event.data.id);
    if (batch === undefined) return;
    const ok = event.data.ok;
    if (!Array.isArray(ok) || ok.length !== batch.checks.length) {
      here(event.data.id);
      return;
    }
    waiting.delete(event.data.id);
    clearTimeout(batch.timer);
    batch.resolve(ok.map((flag) => flag === true));
  };
  worker.onerror = () => {
    broken = true;
    worker.terminate();
    for (const id of [...waiting.keys()]) here(id);
  };
  let lastBig = -Infinity;
  return (checks) => {
    const now = performance.now();
    const big = toWorker(checks.length, lastBig, now);
    if (checks.length > SMALL_BATCH) lastBig = now;
    if (broken || !big) return verifyHere(checks);
    const id = (next += 1);
    // One message of packed bytes (structured clones of thousands of small arrays cost more
    // than the copy): keys by index, signatures end to end, signed bytes with their ends.
    const keyTexts: string[] = [];
    const keyIndex = new Map<string, number>();
    const keyOf = new Uint32Array(checks.length);
    const sigs = new Uint8Array(64 * checks.length);
    const ends = new Uint32Array(checks.length);
    let total = 0;
    checks.forEach((check, i) => {
      let k = keyIndex.get(check.key);
      if (k === undefined) {
        k = keyTexts.length;
        keyIndex.set(check.key, k);
        keyTexts.push(check.key);
      }
      keyOf[i] = k;
      sigs.set(check.sig.subarray(0, 64), 64 * i);
      total += check.data.length;
      ends[i] = total;
    });
    const data = new Uint8Array(total);
    checks.forEach((check, i) => data.set(check.data, i === 0 ? 0 : ends[i - 1]));
    let keyBytes: Uint8Array[];
    try {
      keyBytes = keyTexts.map((text) => b64decode(text));
    } catch {
      return verifyHere(checks);
    }
    return new Promise<boolean[]>((resolve) => {
      waiting.set(id, { checks, resolve, timer: setTimeout(() => here(id), WORKER_PATIENCE_MS) });
      worker.postMessage({ id, keyTexts, keyBytes, keyOf, sigs, data, ends }, [keyOf.buffer, sigs.buffer, data.buffer, ends.buffer]);
    });
  };
}

let shared: Verifier | null | undefined;

/** The page's verifier: one Worker for every chat on the page, made on first use (ChatProxy
 *  calls this once it knows the room is signed, so the thread is up before history comes);
 *  this thread where a Worker cannot be made or the machine has fewer than 4 cores. */
export function pageVerifier(): Verifier {
  if (shared === undefined) shared = workerVerifier();
  return shared ?? verifyHere;
}
