// tests/fixtures/signing_cases.json against WebCrypto (tests/core/test_signing.py runs the same
// cases against Python's cryptography): the same bytes, signatures and verdicts.

import { describe, expect, it } from "vitest";
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
