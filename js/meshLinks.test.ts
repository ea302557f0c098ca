// MeshLinks in a room bigger than MESH_SIZE: it dials, accepts and prunes by the overlay of
// core/mesh.ts, never holds more than MAX_LINKS links, and says where to forward.

import type { DataConnection, Peer } from "peerjs";
import { describe, expect, it } from "vitest";
import { MAX_LINKS, MESH_SIZE, MeshPolicy, overlay } from "./core/mesh";
import { MeshLinks } from "./meshLinks";

class FakeConn {
  closed = false;
  private readonly handlers = new Map<string, ((...args: unknown[]) => void)[]>();
  constructor(readonly peer: string) {}
  on(event: string, handler: (...args: unknown[]) => void): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
  }
  emit(event: string, ...args: unknown[]): void {
    for (const handler of this.handlers.get(event) ?? []) handler(...args);
  }
  send(): void {}
  close(): void {
    this.closed = true;
  }
}

function room(selfId: string, size: number): { links: MeshLinks; dialed: FakeConn[]; present: string[] } {
  const present = [selfId, ...Array.from({ length: size - 1 }, (_, i) => `p${String(i).padStart(3, "0")}-x`)];
  const dialed: FakeConn[] = [];
  const peer = {
    id: selfId,
    disconnected: false,
    connect: (peerId: string) => {
      const conn = new FakeConn(peerId);
      dialed.push(conn);
      return conn;
    },
  } as unknown as Peer;
  const links = new MeshLinks({
    peer: () => peer,
    isPresent: (peerId) => present.includes(peerId),
    present: () => present,
    maxMessageBytes: () => 65_536,
    room: () => "big",
    wantsPart: () => false,
    onOpen: () => {},
    onClosed: () => {},
    onFrame: () => {},
    onFlood: () => {},
    changed: () => {},
  });
  links.setSelf(selfId);
  return { links, dialed, present };
}

describe("MeshLinks in a room past MESH_SIZE", () => {
  it("dials only the overlay's peers with a bigger id, and the rest once someone joins", () => {
    const { links, dialed, present } = room("m-self", 30);
    expect(present.length).toBeGreaterThan(MESH_SIZE);
    links.dialRoster(present);
    const wanted = new MeshPolicy("m-self").wanted(present);
    expect(dialed.map((c) => c.peer).sort()).toEqual([...wanted].filter((p) => p > "m-self").sort());
    present.push("zz-newcomer");
    links.rosterChanged(present);
    const now = new MeshPolicy("m-self").wanted(present);
    const expected = [...now].filter((p) => p > "m-self");
    expect(dialed.filter((c) => !c.closed).map((c) => c.peer).sort()).toEqual(expected.sort());
    expect(dialed.filter((c) => c.closed).every((c) => !now.has(c.peer))).toBe(true);
  });

  it("takes calls the overlay does not want only below MAX_LINKS", () => {
    const { links, present } = room("a-self", 40);
    const wanted = new MeshPolicy("a-self").wanted(present);
    const strangers = present.filter((p) => p !== "a-self" && !wanted.has(p));
    const calls = strangers.slice(0, MAX_LINKS + 1).map((p) => new FakeConn(p));
    for (const call of calls) links.onIncoming(call as unknown as DataConnection);
    expect(calls.map((c) => c.closed)).toEqual([...Array(MAX_LINKS).fill(false), true]);
    // A call the overlay wants is taken even then; an unwanted link goes to stay in bounds.
    const friend = new FakeConn([...wanted][0]);
    links.onIncoming(friend as unknown as DataConnection);
    expect(friend.closed).toBe(false);
    expect(calls.filter((c) => !c.closed).length).toBe(MAX_LINKS - 1);
  });

  it("forwards one hop away from the author, to open links only", () => {
    const { links, present } = room("m-self", 30);
    const conns = [...new MeshPolicy("m-self").wanted(present)].map((p) => new FakeConn(p));
    for (const conn of conns) links.onIncoming(conn as unknown as DataConnection);
    for (const conn of conns) conn.emit("open");
    const graph = overlay(present);
    const neighbour = conns[0].peer;
    const to = links.forwardTo(neighbour, neighbour);
    // From a neighbour's own message: to some of our neighbours that are not its neighbours.
    const open = conns.map((c) => c.peer);
    expect(to).toEqual(new MeshPolicy("m-self").forwardTo(neighbour, neighbour, open, present));
    expect(to.every((p) => open.includes(p) && p !== neighbour && !graph.get(neighbour)!.has(p))).toBe(true);
    conns[1].emit("close");
    expect(links.forwardTo(neighbour, neighbour)).not.toContain(conns[1].peer);
    expect(links.openCount).toBeLessThanOrEqual(MAX_LINKS);
  });
});
