import { describe, expect, it } from "vitest";
import { Sealer } from "./roomKey";
import { type Rejection, sealSignaling } from "./sealedSignaling";

type Frame = Record<string, unknown>;

/** Stands in for peerjs's Socket: what it sends to the server and what it emits to Peer. */
function fakePeer(id: string) {
  const sent: Frame[] = [];
  const delivered: Frame[] = [];
  const socket = {
    send: (data: Frame) => void sent.push(data),
    emit: (event: string, data: Frame) => {
      if (event === "message") delivered.push(data);
      return true;
    },
  };
  return { id, socket, sent, delivered };
}

const key = (fill: number) => Sealer.fromBytes(new Uint8Array(32).fill(fill));
const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !check(); i += 1) await new Promise((r) => setTimeout(r, 2));
  expect(check()).toBe(true);
};

describe("sealSignaling around a peerjs socket", () => {
  it("seals what alice sends and bob opens it in order, candidates after their offer", async () => {
    const [alice, bob] = [fakePeer("alice"), fakePeer("bob")];
    const rejected: Rejection[] = [];
    sealSignaling(alice, key(7), (r) => rejected.push(r));
    sealSignaling(bob, key(7), (r) => rejected.push(r));
    const offer = { connectionId: "dc_1", sdp: { type: "offer", sdp: "a=fingerprint:sha-256 AB" } };
    alice.socket.send({ type: "OFFER", dst: "bob", payload: offer });
    for (let i = 0; i < 5; i += 1) alice.socket.send({ type: "CANDIDATE", dst: "bob", payload: { connectionId: "dc_1", i } });
    alice.socket.send({ type: "LEAVE", dst: "bob" });
    await until(() => alice.sent.length === 7);
    expect(alice.sent.map((f) => f.type)).toEqual(["OFFER", ...Array(5).fill("CANDIDATE"), "LEAVE"]);
    expect(JSON.stringify(alice.sent)).not.toContain("fingerprint");
    // The server relays them with src set; bob's peerjs sees the originals, in order.
    for (const frame of alice.sent) bob.socket.emit("message", { ...frame, src: "alice" });
    await until(() => bob.delivered.length === 7);
    expect(bob.delivered[0].payload).toEqual(offer);
    expect(bob.delivered.slice(1, 6).map((f) => (f.payload as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
    expect(bob.delivered[6].type).toBe("LEAVE");
    expect(rejected).toEqual([]);
  });

  it("refuses another passphrase, a redirected payload and an unsealed one, and reports each", async () => {
    const [alice, bob] = [fakePeer("alice"), fakePeer("bob")];
    const rejected: Rejection[] = [];
    sealSignaling(alice, key(7), () => undefined);
    sealSignaling(bob, key(8), (r) => rejected.push(r));
    alice.socket.send({ type: "OFFER", dst: "bob", payload: { connectionId: "dc_1" } });
    await until(() => alice.sent.length === 1);
    bob.socket.emit("message", { ...alice.sent[0], src: "alice" });
    bob.socket.emit("message", { type: "OFFER", src: "eve", dst: "bob", payload: { connectionId: "dc_2" } });
    await until(() => rejected.length === 2);
    // Each sender has its own chain: their order between senders is not fixed.
    const bySender = new Map(rejected.map((r) => [r.peerId, r]));
    expect(bySender.get("alice")?.reason).toMatch(/authentication failed/);
    expect(bySender.get("eve")?.reason).toMatch(/unsealed/);
    expect(bob.delivered).toEqual([]);

    const carol = fakePeer("carol");
    const carolRejected: Rejection[] = [];
    sealSignaling(carol, key(7), (r) => carolRejected.push(r));
    carol.socket.emit("message", { ...alice.sent[0], src: "alice", dst: "carol" }); // sealed for bob
    await until(() => carolRejected.length === 1);
    expect(carol.delivered).toEqual([]);
  });

  it("without a passphrase passes frames through at once and refuses sealed ones", async () => {
    const [alice, bob] = [fakePeer("alice"), fakePeer("bob")];
    const rejected: Rejection[] = [];
    sealSignaling(alice, key(7), () => undefined);
    sealSignaling(bob, null, (r) => rejected.push(r));
    bob.socket.send({ type: "OFFER", dst: "alice", payload: { connectionId: "x" } });
    expect(bob.sent).toEqual([{ type: "OFFER", dst: "alice", payload: { connectionId: "x" } }]);
    bob.socket.emit("message", { type: "OPEN" });
    bob.socket.emit("message", { type: "ANSWER", src: "carol", dst: "bob", payload: { connectionId: "y" } });
    expect(bob.delivered.length).toBe(2); // synchronously, as without the wrapper
    alice.socket.send({ type: "OFFER", dst: "bob", payload: { connectionId: "z" } });
    await until(() => alice.sent.length === 1);
    bob.socket.emit("message", { ...alice.sent[0], src: "alice" });
    expect(rejected.map((r) => r.reason)).toEqual(["the peer sealed it with a room passphrase, and we have none"]);
    expect(bob.delivered.length).toBe(2);
  });
});
