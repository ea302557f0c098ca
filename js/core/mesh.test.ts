import fixture from "../../tests/fixtures/mesh_cases.json";
import { describe, expect, it } from "vitest";
import {
  CHORDS,
  CHORD_PROBE,
  DIAL_TIMEOUT_MS,
  FORWARD_PARENTS,
  MAX_LINKS,
  MESH_SIZE,
  MeshPolicy,
  REDIAL_BASE_MS,
  REDIAL_MAX_MS,
  RING_NEIGHBOURS,
  SILENT_LINK_MS,
  backoffDelay,
  overlay,
  ringPosition,
} from "./mesh";

interface Case {
  name: string;
  self: string;
  steps: Record<string, any>[];
}

const FIXTURE = fixture as unknown as { constants: Record<string, number>; cases: Case[] };

describe("mesh policy (tests/fixtures/mesh_cases.json)", () => {
  it("has the shared constants", () => {
    expect({
      DIAL_TIMEOUT_MS,
      SILENT_LINK_MS,
      REDIAL_BASE_MS,
      REDIAL_MAX_MS,
      MESH_SIZE,
      MAX_LINKS,
      RING_NEIGHBOURS,
      CHORDS,
      CHORD_PROBE,
      FORWARD_PARENTS,
    }).toEqual(FIXTURE.constants);
  });

  for (const c of FIXTURE.cases) {
    it(c.name, () => {
      const policy = new MeshPolicy(c.self);
      c.steps.forEach((step, number) => {
        const where = `step ${number}`;
        switch (step.op) {
          case "roster":
            expect(policy.dialsOnRoster(step.present, new Set(step.linked)), where).toEqual(step.dials);
            return;
          case "change":
            expect(policy.dialsOnChange(step.present, new Set(step.linked)), where).toEqual(step.dials);
            return;
          case "repair":
            expect(policy.repairDials(step.present, new Set(step.linked), new Set(step.redialing)), where).toEqual(step.dials);
            return;
          case "incoming": {
            const e = step.existing;
            const link = e === null ? null : { open: e.open, dialedByUs: e.dialed_by_us };
            expect(policy.acceptIncoming(step.caller, link, step.present, step.links ?? 0), where).toBe(step.accept);
            return;
          }
          case "lost": {
            const lost = { wasOpen: step.was_open, silent: step.silent, present: step.present, random: step.random };
            expect(policy.onLinkLost(step.peer, lost), where).toBe(step.delay);
            return;
          }
          case "open":
            policy.onLinkOpen(step.peer);
            return;
          case "forget":
            policy.forget(step.peer);
            return;
          case "ring_position":
            expect(ringPosition(step.id, step.salt), where).toBe(step.position);
            return;
          case "overlay": {
            const links = overlay(step.present, step.mesh_size, step.max_links);
            const plain = Object.fromEntries([...links].map(([p, q]) => [p, [...q].sort()]));
            expect(plain, where).toEqual(step.links);
            return;
          }
          case "prune":
            expect(policy.prune(step.present, step.linked), where).toEqual(step.close);
            return;
          case "forward":
            expect(policy.forwardTo(step.author, step.from, step.linked, step.present), where).toEqual(step.to);
            return;
          case "backoff":
            expect(backoffDelay(step.attempt, step.random), where).toBe(step.delay);
            return;
          default:
            throw new Error(`unknown op ${step.op}`);
        }
      });
    });
  }
});
