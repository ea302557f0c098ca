// tests/fixtures/signing_cases.json against WebCrypto (tests/core/test_signing.py runs the same
// cases against Python's cryptography): the same bytes, signatures and verdicts.

import { describe, expect, it, vi } from "vitest";
import fixture from "../../tests/fixtures/signing_cases.json";
import { MessageLog, normalizeIdentity } from "./msglog";
import * as signing from "./signing";

// biome-ignore lint: fixtures are untyped JSON
type Any = any;

const byName = <T extends { name: string }>(cases: T[]): [string, T][] => cases.map((c) => [c.name, c]);
const seeds = fixture.seeds as Record<string, string>;
const publics = fixture.public as Record<string, string>;

function privateKey(name: string): Promise<CryptoKey> {
  const jwk = { kty: "OKP", crv: "Ed25519", d: seeds[name], x: publics[name] };
  return crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
}

const withoutSig = (entry: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(entry).filter(([k]) => k !== "sig"));

describe("signed entries and certificates (signing_cases.json)", () => {
  it.each(byName(fixture.entries as Any[]))("%s: canonical bytes, signature, verdict", async (_name, c) => {
    const entry = withoutSig(c.entry);
    expect(new TextDecoder().decode(signing.entryBytes(c.room, entry))).toBe(c.bytes);
    expect(await signing.signEntry(await privateKey("alice"), c.room, entry)).toBe(c.entry.sig);
    expect(await signing.verifyEntry(publics.alice, c.room, c.entry)).toBe(true);
  });

  it.each(byName(fixture.verify as Any[]))("verify: %s", async (_name, c) => {
    expect(await signing.verifyEntry(publics[c.key], c.room, c.entry)).toBe(c.valid);
  });

  it.each(byName(fixture.certs as Any[]))("certificate: %s", async (_name, c) => {
    const keys = ((c.server_keys as string[] | undefined) ?? ["server"]).map((n) => publics[n]);
    const verified = await signing.verifyCert(keys, c.cert, c.room);
    expect(verified !== null).toBe(c.valid);
    if (verified !== null) {
      expect(verified.user).toEqual(normalizeIdentity(c.cert.user));
      expect(verified.key).toBe(c.cert.key);
    }
  });

  it.each(byName(fixture.wire as Any[]))("on the wire: %s", (_name, c) => {
    const wire = signing.onWire(c.entry);
    expect(wire).toEqual(c.wire);
    expect(JSON.stringify(wire)).toBe(JSON.stringify(c.wire)); // the same bytes as Python's
    expect(signing.entryBytes("r", wire as unknown as Record<string, unknown>)).toEqual(signing.entryBytes("r", c.entry));
  });

  it("pins the certificate bytes", () => {
    const cert = (fixture.certs as Any[])[0].cert;
    expect(new TextDecoder().decode(signing.certBytes(cert))).toBe(fixture.cert_bytes);
  });

  it("a signed entry survives the log and still verifies", async () => {
    const c = (fixture.entries as Any[])[1];
    const log = new MessageLog("Z", normalizeIdentity({ username: "zoe" }));
    const { added, rejected } = log.receiveHistory([{ ...c.entry, user: { username: "alice" } }]);
    expect(rejected).toEqual([]);
    expect(await signing.verifyEntry(publics.alice, c.room, added[0] as unknown as Record<string, unknown>)).toBe(true);
  });

  it("a generated key signs and verifies, and its public key round-trips base64url", async () => {
    const pair = await signing.generateKey();
    const key = await signing.publicKey(pair);
    expect(signing.b64decode(key)).toHaveLength(32);
    const entry = { author: "A", seq: 1, clock: 1, time: 1, text: "hi" };
    const sig = await signing.signEntry(pair.privateKey, "r", entry);
    expect(await signing.verifyEntry(key, "r", { ...entry, sig })).toBe(true);
    expect(await signing.verifyEntry(key, "r", { ...entry, text: "ho", sig })).toBe(false);
  });

  it("b64decode reads back every length b64encode writes, as the platform's base64 does", () => {
    for (let length = 0; length <= 70; length += 1) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 97 + length * 31) & 0xff);
      const text = signing.b64encode(bytes);
      expect(signing.b64decode(text)).toEqual(bytes);
      expect(atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4))).toBe(String.fromCharCode(...bytes));
    }
  });

  it.each(["a=", "a+b", "é", "a\n", "abcde", "a b", "ab\u0100"])("b64decode refuses %j", (text) => {
    expect(() => signing.b64decode(text)).toThrow(RangeError);
  });

  it.each(byName(fixture.book as Any[]))("cert book: %s", async (_name, c) => {
    const book = new signing.CertBook(c.room, [publics.server]);
    for (const op of c.ops) {
      if (op.op === "learn") expect(await book.learn(op.certs)).toEqual(op.learned);
      else if (op.op === "verify") {
        expect(await book.verify(op.entry)).toEqual(op.user === null ? null : normalizeIdentity(op.user));
      } else if (op.op === "certs_for") expect(book.certsFor(op.peers)).toEqual(op.certs);
      else expect(book.refused).toEqual(op.refused);
    }
  });
});

describe("hash chains of signed entries (signing_cases.json `chains`)", () => {
  const chains = (fixture as Any).chains;
  const newBook = async (): Promise<signing.CertBook> => {
    const book = new signing.CertBook("analysis", [publics.server]);
    expect(await book.learn(chains.certs)).toEqual(["A", "M"]);
    return book;
  };

  it("an entry's digest is SHA-256 of its signed bytes and its signature, as Python has it", async () => {
    const { entry, digest } = chains.digest;
    expect(signing.entryDigest("analysis", entry)).toBe(digest);
    const raw = new Uint8Array([...signing.entryBytes("analysis", entry), ...signing.b64decode(entry.sig)]);
    expect(signing.b64encode(new Uint8Array(await crypto.subtle.digest("SHA-256", raw)))).toBe(digest);
    expect(signing.entryDigest("analysis", { ...entry, sig: "short" })).toBeNull();
  });

  it("prev is signed: stripped or swapped, the signature fails", async () => {
    const entry = chains.cases[0].entries[1];
    const key = chains.certs[0].key;
    expect(await signing.verifyEntry(key, "analysis", entry)).toBe(true);
    expect(await signing.verifyEntry(key, "analysis", withoutPrev(entry))).toBe(false);
    expect(await signing.verifyEntry(key, "analysis", { ...entry, prev: "A".repeat(43) })).toBe(false);
  });

  it.each(byName(chains.cases as Any[]))("%s", async (_name, c) => {
    const book = await newBook();
    let asked = 0;
    const counting: signing.Verifier = (checks) => {
      asked += checks.length;
      return signing.verifyHere(checks);
    };
    const users = await book.verifyAll(c.entries, counting);
    expect(users.map((u) => u !== null)).toEqual(c.valid);
    users.forEach((u, i) => {
      if (u !== null) expect(u.username).toBe(({ A: "alice", M: "mallory" } as Record<string, string>)[c.entries[i].author]);
    });
    expect(asked).toBe(c.checks);
    expect(book.checks).toBe(c.checks);
    expect(book.refused).toEqual(c.refused);
  });

  it.each(byName(chains.cases as Any[]))("one by one says the same: %s", async (_name, c) => {
    const book = await newBook();
    const users = await Promise.all(c.entries.map((e: Any) => book.verify(e)));
    expect(users.map((u) => u !== null)).toEqual(c.valid);
  });

  it("a remembered run costs nothing the second time (another peer's answer)", async () => {
    const book = await newBook();
    const five = chains.cases[0].entries;
    await book.verifyAll(five);
    expect(book.checks).toBe(1);
    expect((await book.verifyAll(five)).every((u) => u !== null)).toBe(true);
    expect(book.checks).toBe(1);
  });

  it("a chained entry survives the log, and a bad prev is refused", async () => {
    const [first, second] = chains.cases[0].entries;
    const log = new MessageLog("Z", normalizeIdentity({ username: "zoe" }));
    const bad = { ...first, seq: 7, clock: 7, prev: "not a digest", user: { username: "a" } };
    const { added, rejected } = log.receiveHistory([
      ...[first, second].map((m: Any) => ({ ...m, user: { username: "alice" } })),
      bad,
    ]);
    expect(added.map((m) => m.prev)).toEqual([undefined, second.prev]);
    expect(rejected).toHaveLength(1);
    expect(String(rejected[0])).toMatch(/prev/);
    const book = await newBook();
    expect((await book.verifyAll(added as unknown as Record<string, unknown>[])).every((u) => u !== null)).toBe(true);
    expect(book.checks).toBe(1);
  });
});

function withoutPrev(entry: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(entry).filter(([k]) => k !== "prev"));
}
describe("CertBook remembers verified signatures by the fields they cover", () => {
  /** A book holding alice's certificate as peer A in room r, with a counting verifier. */
  async function setup(held?: (entry: Record<string, unknown>) => Record<string, unknown> | undefined) {
    const serverKey = await privateKey("server");
    const cert: Any = { room: "r", peer: "A", user: normalizeIdentity({ username: "alice" }), key: publics.alice, sig: "" };
    cert.sig = signing.b64encode(new Uint8Array(await crypto.subtle.sign("Ed25519", serverKey, signing.certBytes(cert))));
    const book = new signing.CertBook("r", [publics.server], held);
    expect(await book.learn([cert])).toEqual(["A"]);
    const asked: signing.SignatureCheck[] = [];
    const counting: signing.Verifier = (checks) => {
      asked.push(...checks);
      return signing.verifyHere(checks);
    };
    const alice = await privateKey("alice");
    const signed = async (entry: Record<string, unknown>): Promise<Record<string, unknown>> => ({ ...entry, sig: await signing.signEntry(alice, "r", entry) });
    const check = async (entry: Record<string, unknown>) => (await book.verifyAll([entry], counting))[0]?.username ?? null;
    return { book, asked, signed, check };
  }

  const plain = { author: "A", seq: 1, clock: 1, time: 1_700_000_000_123.5, text: "hello" };

  it("a repeat is not checked again; the same signature over other content always is, and fails", async () => {
    const { book, asked, signed, check } = await setup();
    const entry = await signed(plain);
    expect(await check(entry)).toBe("alice");
    expect(await check({ ...entry })).toBe("alice"); // another peer's copy: remembered
    expect(asked).toHaveLength(1);
    const replays = [
      { ...entry, text: "wire me money" },
      { ...entry, seq: 2 },
      { ...entry, clock: 7 },
      { ...entry, time: 1 },
      { ...entry, off_record: true },
      { ...entry, reply_to: "A:9" },
      { ...entry, text: ["hello"] },
      { ...entry, mime: { "text/plain": "x" } },
    ];
    for (const replay of replays) expect(await check(replay)).toBe(null);
    expect(asked).toHaveLength(1 + replays.length);
    expect(book.refused).toEqual({ bad_signature: replays.length });
    expect(await check({ ...entry })).toBe("alice"); // still remembered, still once
    expect(asked).toHaveLength(1 + replays.length);
  });

  it("a remembered signature vouches for no other prev: a forged entry cannot be chained to it", async () => {
    for (const bound of [false, true]) {
      const log = new Map<string, Record<string, unknown>>();
      const { book, signed } = await setup(bound ? (e) => log.get(`${e.author}:${e.seq}`) : undefined);
      const first = await signed(plain);
      const second = await signed({ ...plain, seq: 2, clock: 2, text: "then", prev: signing.entryDigest("r", first) });
      expect((await book.verifyAll([first, second])).map((u) => u?.username ?? null)).toEqual(["alice", "alice"]);
      log.set("A:1", first).set("A:2", second);
      // Mallory swaps in her own first entry (signed with nothing valid) and points the
      // genuine second entry's prev at it: its signature was remembered, its prev is not that.
      const forged = { ...first, text: "wire me money" };
      const relinked = { ...second, prev: signing.entryDigest("r", forged) };
      expect((await book.verifyAll([forged, relinked])).map((u) => u?.username ?? null)).toEqual([null, null]);
    }
  });

  it("changing the verified object afterwards changes nothing: what was checked is what is remembered", async () => {
    const { asked, signed, check } = await setup();
    const entry = await signed(plain);
    expect(await check(entry)).toBe("alice");
    entry.text = "wire me money";
    expect(await check(entry)).toBe(null);
    expect(await check({ ...entry, text: "hello" })).toBe("alice");
    expect(asked).toHaveLength(2);
  });

  it("entries with objects (a MIME bundle, a reaction's fields) are remembered too, exactly", async () => {
    const { asked, signed, check } = await setup();
    const rich = await signed({ ...plain, mime: { "text/plain": "x", "image/png": "AAAA" } });
    const react = await signed({ ...plain, seq: 2, clock: 2, kind: "react", target: "A:1", emoji: "👍", on: true });
    expect(await check(rich)).toBe("alice");
    expect(await check(react)).toBe("alice");
    // Keys in another order sign the same bytes: a repeat.
    expect(await check({ ...rich, mime: { "image/png": "AAAA", "text/plain": "x" } })).toBe("alice");
    expect(await check({ ...react })).toBe("alice");
    expect(asked).toHaveLength(2);
    expect(await check({ ...rich, mime: { "text/plain": "y", "image/png": "AAAA" } })).toBe(null);
    expect(await check({ ...react, on: false })).toBe(null);
    expect(await check({ ...react, emoji: "👎" })).toBe(null);
    expect(asked).toHaveLength(5);
  });
});

describe("CertBook bound to the log's copies (held)", () => {
  async function setup() {
    const log = new MessageLog("Z", normalizeIdentity({ username: "zoe" }));
    const held = (entry: Record<string, unknown>) =>
      log.get(`${entry.author as string}:${entry.seq as number}`) as Record<string, unknown> | undefined;
    const serverKey = await privateKey("server");
    const cert: Any = { room: "r", peer: "A", user: normalizeIdentity({ username: "alice" }), key: publics.alice, sig: "" };
    cert.sig = signing.b64encode(new Uint8Array(await crypto.subtle.sign("Ed25519", serverKey, signing.certBytes(cert))));
    const book = new signing.CertBook("r", [publics.server], held);
    await book.learn([cert]);
    const asked: signing.SignatureCheck[] = [];
    const counting: signing.Verifier = (checks) => {
      asked.push(...checks);
      return signing.verifyHere(checks);
    };
    const alice = await privateKey("alice");
    const signed = async (entry: Record<string, unknown>): Promise<Record<string, unknown>> => ({
      ...entry,
      sig: await signing.signEntry(alice, "r", entry),
    });
    const check = async (entry: Record<string, unknown>) => (await book.verifyAll([entry], counting))[0]?.username ?? null;
    const keep = (entry: Record<string, unknown>) => log.receiveHistory([{ ...entry, user: { username: "alice" } }]);
    return { book, asked, signed, check, keep };
  }

  const plain = { author: "A", seq: 1, clock: 1, time: 1_700_000_000_123.5, text: "hello" };

  it("a repeat of an entry the log holds is not checked again; other content with its signature is", async () => {
    const { book, asked, signed, check, keep } = await setup();
    const entry = await signed(plain);
    expect(await check(entry)).toBe("alice");
    expect(await check({ ...entry })).toBe("alice"); // not in the log yet: checked again
    expect(asked).toHaveLength(2);
    keep(entry);
    expect(await check({ ...entry })).toBe("alice");
    expect(asked).toHaveLength(2);
    for (const replay of [{ ...entry, text: "wire me money" }, { ...entry, clock: 2 }, { ...entry, off_record: true }]) {
      expect(await check(replay)).toBe(null);
    }
    expect(asked).toHaveLength(5);
    expect(book.refused).toEqual({ bad_signature: 3 });
  });

  it("an entry the log holds but whose signature never verified here is checked (a stored copy is no proof)", async () => {
    const { asked, signed, check, keep } = await setup();
    const entry = await signed(plain);
    keep(entry); // as if restored from the local copy
    expect(await check({ ...entry })).toBe("alice");
    expect(asked).toHaveLength(1);
    const other = await signed({ ...plain, seq: 2, clock: 2 });
    const forged = { ...other, text: "not hers" };
    keep(forged); // a stored copy whose text the signature does not cover
    expect(await check({ ...forged })).toBe(null);
    expect(asked).toHaveLength(2);
  });

  it("entries with a MIME bundle repeat by their signed bytes against the log's copy", async () => {
    const { asked, signed, check, keep } = await setup();
    const rich = await signed({ ...plain, mime: { "text/plain": "x", "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" } });
    expect(await check(rich)).toBe("alice");
    keep(rich);
    expect(await check({ ...rich, mime: { "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "text/plain": "x" } })).toBe("alice");
    expect(asked).toHaveLength(1);
    expect(await check({ ...rich, mime: { "text/plain": "y", "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" } })).toBe(null);
    expect(asked).toHaveLength(2);
  });
});

describe("CertBook.learn", () => {
  it("checks a certificate it holds byte for byte once, and an altered one again (refused)", async () => {
    const chains = fixture.chains as unknown as { certs: Record<string, unknown>[] };
    const alice = chains.certs.find((c) => c.peer === "A") as Record<string, unknown>;
    const book = new signing.CertBook("analysis", [publics.server]);
    const verify = vi.spyOn(crypto.subtle, "verify");
    try {
      expect(await book.learn([alice])).toEqual(["A"]);
      expect(await book.learn([{ ...alice }, JSON.parse(JSON.stringify(alice))])).toEqual([]);
      expect(verify).toHaveBeenCalledTimes(1);
      const user = alice.user as Record<string, unknown>;
      const altered = [
        { ...alice, user: { ...user, display_name: "Mallory" } },
        { ...alice, key: publics.mallory },
        { ...alice, room: "elsewhere" },
      ];
      expect(await book.learn(altered)).toEqual([]);
      expect(verify.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(book.refused).toEqual({ bad_cert: 3 });
      expect(book.cert("A")?.key).toBe(alice.key);
    } finally {
      verify.mockRestore();
    }
  });
});
