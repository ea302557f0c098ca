// The browser's signed entries (js/authorship.ts) between two in-memory peers: what one signs
// and vouches for, the other accepts with the certified identity; forgeries are dropped.

import { describe, expect, it } from "vitest";
import { Authorship } from "./authorship";
import type { ChatFrame } from "./core/frames";
import { MessageLog, normalizeIdentity } from "./core/msglog";
import type { SessionConfig } from "./core/session";
import { b64decode, b64encode, certBytes, generateKey, publicKey, signEntry } from "./core/signing";
import type { Certificate } from "./core/signing";
import type { ChatMessage } from "./protocol";

async function server(): Promise<{ keys: string[]; issue: (peer: string, username: string, key: string) => Promise<Certificate> }> {
  const pair = await generateKey();
  return {
    keys: [await publicKey(pair)],
    issue: async (peer, username, key) => {
      const cert = { room: "r", peer, user: normalizeIdentity({ username, display_name: username.toUpperCase() }), key, sig: "" };
      cert.sig = b64encode(new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, certBytes(cert as unknown as { room: string; peer: string; key: string; user: Record<string, unknown> }))));
      return cert;
    },
  };
}

function session(keys: string[]): SessionConfig {
  return {
    room: "r",
    key: "r",
    path: "/nbchat/",
    ice_servers: [],
    ice_transport_policy: "all",
    user: normalizeIdentity({ username: "x" }),
    ping_interval: 5000,
    alive_timeout: 60000,
    max_message_bytes: 65536,
    version: "",
    server_keys: keys,
  };
}

/** Deliver what `frames` hold to `to`, and wait until it is checked. */
async function pass(to: Authorship, from: string, frames: ChatFrame[]): Promise<ChatFrame[]> {
  const out: ChatFrame[] = [];
  for (const frame of frames) to.incoming(from, frame, (checked) => out.push(checked));
  await new Promise((resolve) => setTimeout(resolve, 20));
  return out;
}

describe("Authorship", () => {
  it("signs, vouches and checks: the receiver sees the certified identity, forgeries are dropped", async () => {
    const srv = await server();
    const learned: Certificate[] = [];
    const alice = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "alice", key), learned: (c) => learned.push(...c) });
    const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {} });
    await alice.certify(session(srv.keys), "A");
    await bob.certify(session(srv.keys), "B");
    expect(alice.active).toBe(true);
    expect(learned.map((c) => c.peer)).toEqual(["A"]);

    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const message = log.compose("hello", 1);
    const sent: ChatFrame[] = [];
    await new Promise<void>((resolve) => alice.sign(message, () => resolve()));
    expect(message.sig).toBeDefined();
    sent.push(...alice.outgoing("B", { type: "message", message }));
    expect(sent.map((f) => f.type)).toEqual(["certs", "message"]);
    // The certificate goes once per link.
    expect(alice.outgoing("B", { type: "message", message }).map((f) => f.type)).toEqual(["message"]);

    const got = await pass(bob, "A", sent);
    expect(got).toHaveLength(1);
    expect((got[0] as { message: ChatMessage }).message.user.display_name).toBe("ALICE");

    // A relayed copy claiming someone else, a changed text, a wrong key, no signature: dropped.
    const wrong = await generateKey();
    const forged = { ...message, seq: 2, id: "A:2", text: "wire me money" };
    forged.sig = await signEntry(wrong.privateKey, "r", forged as unknown as Record<string, unknown>);
    const tampered = { ...message, text: "changed" };
    const unsigned = { ...message, seq: 3, id: "A:3", sig: undefined };
    const claimed = { ...message, user: normalizeIdentity({ username: "mallory" }) };
    const history = await pass(bob, "M", [{ type: "history", messages: [forged, tampered, unsigned, claimed] }]);
    expect(history).toHaveLength(1);
    const kept = (history[0] as { messages: ChatMessage[] }).messages;
    expect(kept.map((m) => [m.id, m.text, m.user.username])).toEqual([["A:1", "hello", "alice"]]);
    expect(bob.refused).toEqual({ bad_signature: 3 });
  });

  it("holds back our own entries that are not signed yet, and is off without server keys", async () => {
    const srv = await server();
    const alice = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "alice", key), learned: () => {} });
    await alice.certify(session(srv.keys), "A");
    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const unsigned = log.compose("not yet", 1);
    expect(alice.outgoing("B", { type: "history", messages: [unsigned] })).toEqual([]);

    const off = new Authorship({ fetchCert: () => Promise.reject(new Error("never asked")), learned: () => {} });
    await off.certify(session([]), "A");
    expect(off.active).toBe(false);
    const frame: ChatFrame = { type: "message", message: unsigned };
    expect(off.outgoing("B", frame)).toEqual([frame]);
    expect(await pass(off, "B", [frame])).toEqual([frame]);
    expect(b64decode(b64encode(new Uint8Array([1, 2])))).toEqual(new Uint8Array([1, 2]));
  });

  it("checks an imported file's entries with the file's certificates: forged ones dropped, claims replaced", async () => {
    const srv = await server();
    const alice = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "alice", key), learned: () => {} });
    await alice.certify(session(srv.keys), "A");
    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const message = log.compose("from alice", 1);
    await new Promise<void>((resolve) => alice.sign(message, () => resolve()));
    const certs = alice.certsFor([message]) ?? [];
    expect(certs.map((c) => c.peer)).toEqual(["A"]);

    // A fresh page: knows the server's keys, not Alice's certificate until the file brings it.
    const fresh = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "zoe", key), learned: () => {} });
    await fresh.certify(session(srv.keys), "Z");
    expect((await fresh.checkImported([], [message])).unverified).toBe(1);
    const claimed = { ...message, user: normalizeIdentity({ username: "mallory", display_name: "Mallory" }) };
    const altered = { ...message, id: "A:2", seq: 2, text: "wire me money", user: normalizeIdentity({ username: "mallory" }) };
    // A certificate the forger made itself (not the server's key) for Alice's peer id: refused.
    const rogue = await (await server()).issue("A", "mallory", await publicKey(await generateKey()));
    const { kept, unverified } = await fresh.checkImported([rogue, ...certs], [claimed, altered, "junk"]);
    expect(unverified).toBe(1);
    expect(kept).toEqual([{ ...message, user: certs[0].user }, "junk"]);
    expect(fresh.refused).toMatchObject({ bad_cert: 1, bad_signature: 1 });

    const off = new Authorship({ fetchCert: () => Promise.reject(new Error("never asked")), learned: () => {} });
    await off.certify(session([]), "A");
    expect(await off.checkImported(certs, [claimed])).toEqual({ kept: [claimed], unverified: 0 });
    expect(off.certsFor([message])).toBeUndefined();
  });
});
