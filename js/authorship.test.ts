// The browser's signed entries (js/authorship.ts) between two in-memory peers: what one signs
// and vouches for, the other accepts with the certified identity; forgeries are dropped.

import { describe, expect, it, vi } from "vitest";
import { Authorship } from "./authorship";
import type { ChatFrame } from "./core/frames";
import { MessageLog, normalizeIdentity } from "./core/msglog";
import type { SessionConfig } from "./core/session";
import { b64decode, b64encode, certBytes, entryDigest, generateKey, publicKey, signEntry, verifyHere } from "./core/signing";
import type { Certificate, SignatureCheck, Verifier } from "./core/signing";
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
    // The certificate rides in the message's own frame (no `certs` frame ahead of it)...
    expect(sent.map((f) => f.type)).toEqual(["message"]);
    expect((sent[0] as { certs?: Certificate[] }).certs?.map((c) => c.peer)).toEqual(["A"]);
    // ...once per link. On the wire an entry has no `id` and no `user`: the receiver makes
    // the one and takes the other from the certificate.
    const { id: _id, user: _user, ...wire } = message;
    expect(alice.outgoing("B", { type: "message", message })).toEqual([{ type: "message", message: wire }]);
    expect(Object.keys((sent[0] as { message: object }).message)).not.toContain("user");
    expect(message.user.username).toBe("alice"); // the log's own entry is left as it was

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

  it("sends a history without ids or claimed users, and the receiver's log shows the certified identity", async () => {
    const srv = await server();
    const alice = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "alice", key), learned: () => {} });
    const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {} });
    await alice.certify(session(srv.keys), "A");
    await bob.certify(session(srv.keys), "B");
    const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
    const entries = [log.compose("one", 1), log.compose("two", 2)];
    for (const entry of entries) await new Promise<void>((resolve) => alice.sign(entry, () => resolve()));
    const sent = alice.outgoing("B", { type: "history", messages: entries });
    const wire = (sent[0] as { messages: object[] }).messages;
    expect(wire.map((m) => Object.keys(m).filter((k) => k === "id" || k === "user"))).toEqual([[], []]);
    expect(JSON.stringify(wire).length).toBeLessThan(0.8 * JSON.stringify(entries).length);

    const got = await pass(bob, "C", sent); // relayed by a third peer: not first-hand
    const theirs = new MessageLog("B", normalizeIdentity({ username: "bob" }));
    const { added, rejected } = theirs.receiveHistory((got[0] as { messages: unknown[] }).messages);
    expect(rejected).toEqual([]);
    expect(added.map((m) => [m.id, m.text, m.user.display_name])).toEqual([
      ["A:1", "one", "ALICE"],
      ["A:2", "two", "ALICE"],
    ]);
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

  describe("pipelined checks (frames checked as they arrive, delivered in arrival order)", () => {
    /** A verifier whose answers the test releases, in any order; each answer is the real one. */
    function heldVerifier(): { verifier: Verifier; asked: SignatureCheck[][]; release: (n: number, answer?: boolean[]) => Promise<void> } {
      const asked: SignatureCheck[][] = [];
      const waiting: ((answer?: boolean[]) => void)[] = [];
      const real: Promise<boolean[]>[] = [];
      const verifier: Verifier = (checks) => {
        asked.push([...checks]);
        real.push(verifyHere(checks));
        return new Promise((resolve) => {
          waiting.push((answer) => resolve(answer as boolean[]));
        });
      };
      const release = async (n: number, answer?: boolean[]) => {
        const truth = await real[n];
        waiting[n](answer ?? truth);
        for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
      };
      return { verifier, asked, release };
    }

    /** Alice (certified as "A") writes `count` signed messages; the certs frame that vouches for them. */
    async function alice(count: number, text = (i: number) => `m${i + 1}`) {
      const srv = await server();
      const writer = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "alice", key), learned: () => {} });
      await writer.certify(session(srv.keys), "A");
      const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
      const messages: ChatMessage[] = [];
      for (let i = 0; i < count; i += 1) {
        const message = log.compose(text(i), i + 1);
        await new Promise<void>((resolve) => writer.sign(message, () => resolve()));
        messages.push(message);
      }
      // The certificates, as a `certs` frame ahead of the entries (as peers sent them before
      // they rode in the entries' frame: both are accepted).
      const vouched = writer.outgoing("B", { type: "history", messages })[0] as { certs?: unknown[] };
      expect(vouched.certs).toHaveLength(1);
      const certs: ChatFrame = { type: "certs", certs: vouched.certs ?? [] };
      return { srv, messages, certs };
    }

    const texts = (frames: ChatFrame[]) =>
      frames.map((f) => (f.type === "message" ? [f.message.text] : f.type === "history" ? f.messages.map((m) => m.text) : [f.type]));

    it("checks every frame whose authors are known at once, and still delivers them in arrival order", async () => {
      const { srv, messages, certs } = await alice(4);
      const held = heldVerifier();
      const learned: Certificate[] = [];
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: (c) => learned.push(...c), verifier: held.verifier });
      await bob.certify(session(srv.keys), "B");
      const out: ChatFrame[] = [];
      bob.incoming("A", certs, (f) => out.push(f));
      await vi.waitFor(() => expect(learned.map((c) => c.peer)).toContain("A")); // Alice's certificate learned
      bob.incoming("A", { type: "history", messages: messages.slice(0, 2) }, (f) => out.push(f));
      bob.incoming("A", { type: "message", message: messages[2] }, (f) => out.push(f));
      bob.incoming("A", { type: "history", messages: [messages[3]] }, (f) => out.push(f));
      // All three asked for before any answer: pipelined (m1 and m2 are one hash-chained run:
      // one signature checked).
      expect(held.asked.map((batch) => batch.length)).toEqual([1, 1, 1]);
      await held.release(2);
      await held.release(1);
      expect(out).toEqual([]); // the first frame is not checked yet: nothing overtakes it
      await held.release(0);
      expect(texts(out)).toEqual([["m1", "m2"], ["m3"], ["m4"]]);
      expect(out.flatMap((f) => (f.type === "history" ? f.messages : f.type === "message" ? [f.message] : [])).map((m) => m.user?.display_name)).toEqual([
        "ALICE",
        "ALICE",
        "ALICE",
        "ALICE",
      ]);
    });

    it("waits for the certificates ahead before checking entries by an author not yet known", async () => {
      const { srv, messages, certs } = await alice(2);
      const held = heldVerifier();
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {}, verifier: held.verifier });
      await bob.certify(session(srv.keys), "B");
      const out: ChatFrame[] = [];
      // Relayed by M: the certs frame, then Alice's entries, arriving back to back.
      bob.incoming("M", certs, (f) => out.push(f));
      bob.incoming("M", { type: "history", messages }, (f) => out.push(f));
      expect(held.asked).toEqual([]); // not checked against a book that lacks Alice yet
      await vi.waitFor(() => expect(held.asked.map((batch) => batch.length)).toEqual([1])); // one chained run
      await held.release(0);
      expect(texts(out)).toEqual([["m1", "m2"]]);
      expect(bob.refused).toEqual({});

      // With no certificate anywhere ahead, an unknown author's entries are dropped, not held.
      const carol = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "carol", key), learned: () => {}, verifier: verifyHere });
      await carol.certify(session(srv.keys), "C");
      expect(await pass(carol, "M", [{ type: "history", messages }])).toEqual([]);
      expect(carol.refused).toEqual({ unknown_author: 2 });
    });

    it("learns the certificates a frame carries before checking its entries, after the frames ahead", async () => {
      const { srv, messages, certs } = await alice(2);
      const held = heldVerifier();
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {}, verifier: held.verifier });
      await bob.certify(session(srv.keys), "B");
      const out: ChatFrame[] = [];
      const carried = (certs as { certs: unknown[] }).certs;
      // Relayed by M: a frame ahead (by an author nobody vouched for), then Alice's entries
      // carrying her certificate.
      const stranger = { ...messages[0], author: "Z", id: "Z:1" };
      bob.incoming("M", { type: "history", messages: [stranger] }, (f) => out.push(f));
      bob.incoming("M", { type: "history", messages, certs: carried }, (f) => out.push(f));
      await vi.waitFor(() => expect(held.asked.map((batch) => batch.length)).toEqual([1])); // one chained run
      await held.release(0);
      expect(texts(out)).toEqual([["m1", "m2"]]);
      expect(bob.refused).toEqual({ unknown_author: 1 });

      // A certificate the server did not sign vouches for nothing.
      const forged = { ...(carried[0] as Certificate), key: (await server()).keys[0] };
      const carol = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "carol", key), learned: () => {}, verifier: verifyHere });
      await carol.certify(session(srv.keys), "C");
      expect(await pass(carol, "M", [{ type: "history", messages, certs: [forged] }])).toEqual([]);
      expect(carol.refused).toEqual({ bad_cert: 1, unknown_author: 2 });
    });

    it("lets no unverifiable entry through, whatever order the answers come in", async () => {
      const { srv, messages, certs } = await alice(3);
      const held = heldVerifier();
      const learned: Certificate[] = [];
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: (c) => learned.push(...c), verifier: held.verifier });
      await bob.certify(session(srv.keys), "B");
      const out: ChatFrame[] = [];
      bob.incoming("A", certs, (f) => out.push(f));
      await vi.waitFor(() => expect(learned.map((c) => c.peer)).toContain("A"));
      const forged = { ...messages[1], text: "wire me money" };
      bob.incoming("A", { type: "history", messages: [messages[0], forged] }, (f) => out.push(f));
      bob.incoming("A", { type: "history", messages: [messages[1]] }, (f) => out.push(f));
      bob.incoming("A", { type: "history", messages: [messages[2]] }, (f) => out.push(f));
      bob.incoming("A", { type: "history", messages: [messages[2]] }, (f) => out.push(f));
      // A checker that answers too few flags, or anything but true, vouches for nothing.
      await held.release(3, []);
      await held.release(2, [1 as unknown as boolean]);
      await held.release(1);
      expect(out).toEqual([]);
      // The first frame's run [m1, forged] fails at its last signature: m1 is asked again alone.
      await held.release(0);
      expect(out).toEqual([]);
      await vi.waitFor(() => expect(held.asked).toHaveLength(5));
      expect(held.asked[4].length).toBe(1);
      await held.release(4);
      expect(texts(out)).toEqual([["m1"], ["m2"]]);
      expect(bob.refused).toEqual({ bad_signature: 3 });
    });

    it("drops a frame whose check fails and delivers the ones after it", async () => {
      const { srv, messages, certs } = await alice(2);
      let calls = 0;
      const flaky: Verifier = (checks) => {
        calls += 1;
        return calls === 1 ? Promise.reject(new Error("worker gone")) : verifyHere(checks);
      };
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {}, verifier: flaky });
      await bob.certify(session(srv.keys), "B");
      const got: ChatFrame[] = [];
      for (const frame of [certs, { type: "history", messages: [messages[0]] }, { type: "history", messages: [messages[1]] }] as ChatFrame[]) {
        bob.incoming("A", frame, (f) => got.push(f));
      }
      await vi.waitFor(() => expect(calls).toBe(2));
      await vi.waitFor(() => expect(texts(got)).toEqual([["m2"]]));
    });

    /** Bob, counting the signatures he checks, and a way to hand him frames from a peer. */
    async function countingBob(srv: Awaited<ReturnType<typeof alice>>["srv"]) {
      const asked: SignatureCheck[] = [];
      const counting: Verifier = (checks) => {
        asked.push(...checks);
        return verifyHere(checks);
      };
      const bob = new Authorship({ fetchCert: (_s, id, key) => srv.issue(id, "bob", key), learned: () => {}, verifier: counting });
      await bob.certify(session(srv.keys), "B");
      const got: ChatFrame[] = [];
      const send = (from: string, frames: ChatFrame[]) => frames.forEach((f) => bob.incoming(from, f, (c) => got.push(c)));
      return { bob, asked, got, send };
    }

    it("checks an entry that comes again from another peer once, and a changed copy of it again", async () => {
      const { srv, messages, certs } = await alice(2);
      const { bob, asked, got, send } = await countingBob(srv);
      send("A", [certs, { type: "history", messages }]);
      await vi.waitFor(() => expect(texts(got)).toEqual([["m1", "m2"]]));
      expect(asked).toHaveLength(1); // one hash-chained run: its last signature
      // The same two entries answered by C (a second peer syncing us): not checked again.
      send("C", [{ type: "history", messages }]);
      await vi.waitFor(() => expect(texts(got)).toEqual([["m1", "m2"], ["m1", "m2"]]));
      expect(asked).toHaveLength(1);
      // A copy with the same signature but another text is checked, and dropped (then m1,
      // whose run it ended, is checked on its own).
      const changed = { ...messages[1], text: "wire me money" };
      send("C", [{ type: "history", messages: [messages[0], changed] }]);
      await vi.waitFor(() => expect(texts(got)).toEqual([["m1", "m2"], ["m1", "m2"], ["m1"]]));
      expect(asked).toHaveLength(3);
      expect(bob.refused).toEqual({ bad_signature: 1 });
    });

    it("chains what it signs: a catch-up of 100 entries costs one check, a tampered one is still dropped", async () => {
      const { srv, messages, certs } = await alice(100);
      expect(messages[0].prev).toBeUndefined();
      messages.slice(1).forEach((m, i) => expect(m.prev).toBe(entryDigest("r", messages[i] as unknown as Record<string, unknown>)));
      const { bob, asked, got, send } = await countingBob(srv);
      // Newest first, as a sync answer comes: two frames of 50.
      send("A", [certs, { type: "history", messages: messages.slice(50) }, { type: "history", messages: messages.slice(0, 50) }]);
      await vi.waitFor(() => expect(got).toHaveLength(2));
      expect(texts(got).flat()).toHaveLength(100);
      expect(asked).toHaveLength(2); // one per frame: each frame's run ends in one signature
      // From another peer, a copy whose 30th entry was altered: that one is dropped, the rest kept.
      const altered = messages.map((m, i) => (i === 29 ? { ...m, text: "wire me money" } : m));
      const fresh = await countingBob(srv);
      fresh.send("C", [certs, { type: "history", messages: altered }]);
      await vi.waitFor(() => expect(fresh.got).toHaveLength(1));
      const kept = texts(fresh.got)[0];
      expect(kept).toHaveLength(99);
      expect(kept).not.toContain("wire me money");
      expect(fresh.bob.refused).toEqual({ bad_signature: 1 });
      // m1…m30 (ending in the altered one: refused, then m1…m29 one by one) and m31…m100.
      expect(fresh.asked).toHaveLength(1 + 1 + 29);
      expect(bob.refused).toEqual({});
    });

    it("does not remember long entries (memory stays bounded): they are checked each time they come", async () => {
      const { srv, messages, certs } = await alice(1, () => "x".repeat(5_000));
      const { bob, asked, got, send } = await countingBob(srv);
      send("A", [certs, { type: "history", messages }]);
      await vi.waitFor(() => expect(got).toHaveLength(1));
      send("C", [{ type: "history", messages }]);
      await vi.waitFor(() => expect(got).toHaveLength(2));
      expect(asked).toHaveLength(2);
      expect(bob.refused).toEqual({});
    });
  });
});
