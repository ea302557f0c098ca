// Reconnect delays for the signaling and presence sockets: the mesh's backoff (core/mesh.ts).

import { backoffDelay as coreBackoffDelay } from "./core/mesh";

export function backoffDelay(attempt: number, baseMs = 500, maxMs = 30_000, random: () => number = Math.random): number {
  return coreBackoffDelay(attempt, random(), baseMs, maxMs);
}
