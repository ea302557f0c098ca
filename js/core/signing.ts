// Verifiable authorship (docs/protocol.md §4.4): Ed25519 signatures on log entries and the
// server's certificate binding a peer's public key to its Jupyter identity. Mirrors
// src/nbchat/core/signing.py (whose docstring states the rules) on WebCrypto;
// tests/fixtures/signing_cases.json pins both.

import type { Identity } from "../protocol";
import { type WireEntry, dumps } from "./frames";
import { InvalidMessage, normalizeIdentity } from "./msglog";
import { sha256 } from "./sha256";

export const ENTRY_CONTEXT = "nbchat-entry/1";
export const CERT_CONTEXT = "nbchat-cert/1";
/** The fields of a log entry a signature covers, in this order (absent ones as null). */
export const ENTRY_FIELDS = [
  "author",
  "seq",
  "clock",
  "time",
  "text",
  "mime",
  "file",
  "kind",
  "target",
  "reply_to",
  "emoji",
  "on",
] as const;
const IDENTITY_FIELDS = ["username", "name", "display_name", "initials", "color", "avatar_url"] as const;
const ED25519 = { name: "Ed25519" } as const;

/** The server's word that `key` belongs to peer `peer` of `user` in `room`. */
export interface Certificate {
  room: string;
  peer: string;
  user: Identity;
  /** The peer's Ed25519 public key, base64url of its 32 raw bytes. */
  key: string;
  /** The server's signature over certBytes. */
  sig: string;
}

const utf8 = new TextEncoder();

const B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding. One pass over a table (a late joiner encodes a digest per
 *  entry: btoa and three replaces cost several times more). */
export function b64encode(data: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += B64_CHARS[n >>> 18] + B64_CHARS[(n >>> 12) & 63] + B64_CHARS[(n >>> 6) & 63] + B64_CHARS[n & 63];
  }
  if (i < data.length) {
    const n = (data[i] << 16) | (i + 1 < data.length ? data[i + 1] << 8 : 0);
    out += B64_CHARS[n >>> 18] + B64_CHARS[(n >>> 12) & 63];
    if (i + 1 < data.length) out += B64_CHARS[(n >>> 6) & 63];
  }
  return out;
}

const B64_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i += 1) B64_VALUES[B64_CHARS.charCodeAt(i)] = i;

/** Inverse of b64encode; throws a RangeError for anything else. One pass over the text (a
 *  late joiner decodes 10,000 signatures: atob + replace + Uint8Array.from was ~18 µs each). */
export function b64decode(text: string): Uint8Array<ArrayBuffer> {
  if (typeof text !== "string" || text.length % 4 === 1) throw new RangeError("not base64url");
  const out = new Uint8Array((text.length * 3) >> 2);
  let bits = 0;
  let held = 0;
  let at = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? B64_VALUES[code] : -1;
    if (value < 0) throw new RangeError("not base64url");
    bits = (bits << 6) | value;
    held += 6;
    if (held >= 8) {
      held -= 8;
      out[at++] = (bits >> held) & 0xff;
    }
  }
  return out;
}

type Fields = Record<string, unknown>;

const orNull = (value: unknown): unknown => (value === undefined ? null : value);

/** `value` with every object's keys sorted (a MIME bundle or a file card may arrive with its
 *  keys in another order than its author wrote them). Keys are ASCII: code units sort as
 *  Python's code points do. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object" && value !== null) {
    const object = value as Fields;
    return Object.fromEntries(
      Object.keys(object)
        .sort()
        .map((key) => [key, canonical(object[key])]),
    );
  }
  return value;
}

/** The text whose UTF-8 an entry's author signs. */
function entryText(room: string, entry: Fields): string {
  const fields = ENTRY_FIELDS.map((f) => canonical(orNull(entry[f])));
  // Off the record: appended only then, so every earlier signature stays valid; a relay can
  // neither strip the flag nor add it.
  if (entry.off_record !== undefined && entry.off_record !== null) fields.push(entry.off_record);
  // The hash chain: the digest of the author's previous entry, signed (only when present;
  // `off_record` is `true` and `prev` a string, so the array reads one way only).
  if (entry.prev !== undefined && entry.prev !== null) fields.push(entry.prev);
  return dumps([ENTRY_CONTEXT, room, ...fields]);
}

/**
 * An entry as a frame carries it. A signed one goes without `id` (the receiver makes it from
 * `author` and `seq`) and `user` (the receiver shows the identity in the author's certificate,
 * never a claimed one): about a third of a short message's bytes. Receivers from before this
 * rule make both the same way, so they take it too. An unsigned entry goes as it is.
 */
export function onWire(entry: WireEntry): WireEntry {
  if (entry.sig === undefined || entry.sig === null) return entry;
  const out: Fields = {};
  for (const key in entry) if (key !== "id" && key !== "user") out[key] = (entry as Fields)[key];
  return out as WireEntry;
}

/** What an entry's author signs. */
export function entryBytes(room: string, entry: Fields): Uint8Array<ArrayBuffer> {
  return utf8.encode(entryText(room, entry));
}

/** What the server signs for a certificate. */
export function certBytes(cert: { room: unknown; peer: unknown; key: unknown; user: Fields }): Uint8Array<ArrayBuffer> {
  return utf8.encode(certText(cert));
}

function certText(cert: { room: unknown; peer: unknown; key: unknown; user: Fields }): string {
  const fields = IDENTITY_FIELDS.map((f) => orNull(cert.user[f]));
  return dumps([CERT_CONTEXT, cert.room, cert.peer, ...fields, cert.key]);
}

export async function generateKey(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"])) as CryptoKeyPair;
}

/** The base64url raw public key of a pair. */
export async function publicKey(pair: CryptoKeyPair): Promise<string> {
  return b64encode(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
}

const imported = new Map<string, Promise<CryptoKey | null>>();

/** A public key from its base64url text, imported once; null if it is not one. */
function importPublic(key: string): Promise<CryptoKey | null> {
  let found = imported.get(key);
  if (found === undefined) {
    found = (async () => {
      try {
        const raw = b64decode(key);
        if (raw.length !== 32) return null;
        return await crypto.subtle.importKey("raw", raw, ED25519, false, ["verify"]);
      } catch {
        return null;
      }
    })();
    if (imported.size > 4096) imported.clear(); // a bound, not a policy: keys are few
    imported.set(key, found);
  }
  return found;
}

/** One signature to check: `sig` (64 raw bytes) over `data` by the raw Ed25519 `key`. */
export interface SignatureCheck {
  /** base64url of the 32-byte public key. */
  key: string;
  sig: Uint8Array<ArrayBuffer>;
  data: Uint8Array<ArrayBuffer>;
}

/** Checks signatures, each answer in the order asked. Where they run is the caller's choice
 *  (this thread, or a Worker: js/verifier.ts); what makes a signature valid is not. */
export type Verifier = (checks: readonly SignatureCheck[]) => Promise<boolean[]>;

/** Ed25519 on this thread: every key imported once, every check issued at once. */
export const verifyHere: Verifier = async (checks) => {
  const keys = new Map<string, Promise<CryptoKey | null>>();
  for (const check of checks) if (!keys.has(check.key)) keys.set(check.key, importPublic(check.key));
  const imported = new Map<string, CryptoKey | null>();
  for (const [text, key] of keys) imported.set(text, await key);
  return Promise.all(
    checks.map((check) => {
      const key = imported.get(check.key);
      if (key === null || key === undefined) return false;
      return crypto.subtle.verify(ED25519, key, check.sig, check.data).catch(() => false);
    }),
  );
};

/** `signature` decoded when it can be an Ed25519 signature (64 bytes), else null. */
function signatureBytes(signature: unknown): Uint8Array<ArrayBuffer> | null {
  if (typeof signature !== "string") return null;
  try {
    const raw = b64decode(signature);
    return raw.length === 64 ? raw : null;
  } catch {
    return null;
  }
}

async function verify(key: string, signature: unknown, data: Uint8Array<ArrayBuffer>): Promise<boolean> {
  const sig = signatureBytes(signature);
  if (sig === null) return false;
  return (await verifyHere([{ key, sig, data }]))[0];
}

/** SHA-256 of an entry's signed bytes followed by its 64 signature bytes, base64url. */
function digest(data: Uint8Array, sig: Uint8Array): string {
  return b64encode(sha256(data, sig));
}

/** What the author's next entry names as `prev` (the hash chain, docs/protocol.md §4.4); null
 *  when the entry has no signature. */
export function entryDigest(room: string, entry: Fields): string | null {
  const sig = signatureBytes(entry.sig);
  return sig === null ? null : digest(entryBytes(room, entry), sig);
}

/** WebCrypto's own promise of an entry's raw signature (b64encode it for `sig`): a `then` on
 *  it runs as soon as WebCrypto answers, no promise between. */
export function rawSignature(privateKey: CryptoKey, room: string, entry: Fields): Promise<ArrayBuffer> {
  return crypto.subtle.sign(ED25519, privateKey, entryBytes(room, entry));
}

/** The `sig` of an entry we author. */
export async function signEntry(privateKey: CryptoKey, room: string, entry: Fields): Promise<string> {
  return b64encode(new Uint8Array(await rawSignature(privateKey, room, entry)));
}

/** Whether `entry.sig` is `key`'s signature of this entry in this room. */
export function verifyEntry(key: string, room: string, entry: Fields): Promise<boolean> {
  return verify(key, entry.sig, entryBytes(room, entry));
}

const isRecord = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The certificate if one of `serverKeys` signed it for `room`, else null. */
export async function verifyCert(serverKeys: readonly string[], cert: unknown, room: string): Promise<Certificate | null> {
  if (!isRecord(cert) || !isRecord(cert.user)) return null;
  const { peer, key, sig } = cert;
  if (cert.room !== room || typeof peer !== "string" || typeof key !== "string" || typeof cert.user.username !== "string") {
    return null;
  }
  const data = certBytes({ room: cert.room, peer, key, user: cert.user });
  let trusted = false;
  for (const serverKey of serverKeys) {
    if (await verify(serverKey, sig, data)) {
      trusted = true;
      break;
    }
  }
  if (!trusted) return null;
  try {
    return { room, peer, user: normalizeIdentity(cert.user), key, sig: sig as string };
  } catch (error) {
    if (error instanceof InvalidMessage) return null;
    throw error;
  }
}

/** How many verified signatures a CertBook remembers (a 10,000-message room twice over). */
const VERIFIED_HELD = 20_000;
/** How much signed text they may hold in all (a bound on memory: the text is the entry's,
 *  MIME bundle included), and the longest one remembered (a shared figure is not kept twice). */
const VERIFIED_CHARS = 4_000_000;
const VERIFIED_TEXT_MAX = 4_096;

/** The signed fields after the first five, then `off_record` and `prev` (appended when
 *  present). `prev` must be among them: a remembered signature with another `prev` would
 *  otherwise vouch, through the chain, for an entry its author never signed. */
const REST_FIELDS = [...ENTRY_FIELDS.slice(5), "off_record", "prev"] as const;

/** A signed field's value as a JSON primitive (absent as null), or undefined for an object. */
function primitive(value: unknown): string | number | boolean | null | undefined {
  if (value === undefined || value === null) return null;
  const type = typeof value;
  return type === "string" || type === "number" || type === "boolean" ? (value as string | number | boolean) : undefined;
}

/**
 * What a verified signature was checked over, kept small: when every signed field is a JSON
 * primitive, the fields themselves (references to the entry's own strings, which the log
 * holds anyway: ~50 bytes an entry, where the signed text was ~330), else the signed text.
 * `rest` is null when the fields after `text` are all absent (a plain message).
 */
type Signed =
  | { key: string; author: unknown; seq: unknown; clock: unknown; time: unknown; text: unknown; rest: unknown[] | null }
  | { key: string; signed: string };

/** `entry`'s signed fields as a Signed record, or null when one of them is not a primitive. */
function signedFields(key: string, entry: Fields): Signed | null {
  for (const field of ENTRY_FIELDS) if (primitive(entry[field]) === undefined) return null;
  if (primitive(entry.off_record) === undefined || primitive(entry.prev) === undefined) return null;
  const rest = REST_FIELDS.some((field) => primitive(entry[field]) !== null) ? REST_FIELDS.map((field) => primitive(entry[field])) : null;
  return { key, author: entry.author, seq: entry.seq, clock: entry.clock, time: entry.time, text: entry.text, rest };
}

/** Whether `entry` with key `key` signs exactly what `held` was verified over. Primitives
 *  compare with Object.is (0 and -0 differ: at worst a signature is checked again); any
 *  other difference is a miss, never a hit. `text` is entryText's, when already made. */
function signsSame(held: Signed, key: string, room: string, entry: Fields, text?: string): boolean {
  if (held.key !== key) return false;
  if ("signed" in held) return held.signed === (text ?? entryText(room, entry));
  if (
    !Object.is(held.author, entry.author) ||
    !Object.is(held.seq, entry.seq) ||
    !Object.is(held.clock, entry.clock) ||
    !Object.is(held.time, entry.time) ||
    !Object.is(held.text, entry.text)
  ) {
    return false;
  }
  const rest = held.rest;
  return REST_FIELDS.every((field, i) => {
    const value = primitive(entry[field]);
    return value !== undefined && Object.is(rest === null ? null : rest[i], value);
  });
}

/**
 * The certificates one peer holds for a room, and the entries they vouch for (the rules are
 * in CertBook's docstring in src/nbchat/core/signing.py). Asynchronous because WebCrypto is.
 */
export class CertBook {
  private readonly certs = new Map<string, Certificate>();
  readonly refused: Record<string, number> = {};
  /** Signatures that verified, each with the key and the fields (or text) it was checked
   *  over: the same entry from another peer (every peer answers a joiner's sync) is not
   *  checked again. Only exact repeats hit (same key, signature and signed bytes), and
   *  Ed25519's answer for those is always the same; the same signature over anything else
   *  is checked as any entry is. With `held`, a signature is remembered alone (null) and
   *  bound to the entry the log holds for that id: ~20 bytes an entry instead of ~70. */
  private readonly verified = new Map<string, Signed | null>();
  private verifiedChars = 0;
  /** Signatures checked (a chain's run costs one). */
  checks = 0;

  /**
   * `held`, when given, returns the entry this peer already holds for an entry's id (its
   * log's copy), if any: a signature that verified here is a repeat only for an entry with
   * the same signed fields as that copy. The log holds only entries that verified, our own
   * and what this browser stored itself (trusted as stored, docs/protocol.md §4.4).
   */
  constructor(
    readonly room: string,
    readonly serverKeys: readonly string[],
    private readonly held?: (entry: Fields) => Fields | undefined,
  ) {}

  /** Whether `entry` (whose author's key is `key`) repeats a signature verified here. */
  private repeats(entry: Fields, key: string): boolean {
    const signature = entry.sig as string;
    const known = this.verified.get(signature);
    if (known === undefined) return false;
    if (known !== null) return signsSame(known, key, this.room, entry);
    const copy = this.held?.(entry);
    if (copy === undefined || copy.sig !== signature) return false;
    const fields = signedFields(key, copy);
    return signsSame(fields ?? { key, signed: entryText(this.room, copy) }, key, this.room, entry);
  }

  private refuse(reason: string): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
  }

  /** Take certificates from a peer; return the peer ids newly vouched for. */
  async learn(certs: readonly unknown[]): Promise<string[]> {
    const learned: string[] = [];
    for (const raw of certs) {
      if (this.heldAlready(raw)) continue;
      const cert = await verifyCert(this.serverKeys, raw, this.room);
      if (cert === null) {
        this.refuse("bad_cert");
        continue;
      }
      const held = this.certs.get(cert.peer);
      if (held === undefined) {
        this.certs.set(cert.peer, cert);
        learned.push(cert.peer);
      } else if (held.key !== cert.key) {
        this.refuse("key_swap");
      }
    }
    return learned;
  }

  /** Whether `raw` is, byte for byte, a certificate already held: every link that forwards
   *  an author's first entry carries it, and one server-signature check is enough. */
  private heldAlready(raw: unknown): boolean {
    if (typeof raw !== "object" || raw === null) return false;
    const { peer, sig, room, key, user } = raw as Record<string, unknown>;
    const held = typeof peer === "string" ? this.certs.get(peer) : undefined;
    if (held === undefined || sig !== held.sig || room !== this.room || typeof user !== "object" || user === null) return false;
    return certText({ room, peer, key, user: user as Fields }) === certText({ ...held, user: held.user as unknown as Fields });
  }

  cert(peer: string): Certificate | undefined {
    return this.certs.get(peer);
  }

  /** The certificates held for `peers` (each once, in first-seen order). */
  certsFor(peers: Iterable<string>): Certificate[] {
    return [...new Set(peers)].map((p) => this.certs.get(p)).filter((c): c is Certificate => c !== undefined);
  }

  /** The identity vouched for `entry`, or null (dropped and counted). */
  async verify(entry: Fields): Promise<Identity | null> {
    return (await this.verifyAll([entry]))[0];
  }

  /** Whether every one of `entries` names an author whose certificate is held (so checking
   *  them need not wait for certificates still on their way). */
  knows(entries: readonly Fields[]): boolean {
    return entries.every((entry) => typeof entry.author === "string" && this.certs.has(entry.author));
  }

  /**
   * `verify` for many entries at once, following hash chains (docs/protocol.md §4.4): each
   * entry's identity or null (dropped and counted), in the order given. Per author, the
   * entries sorted by `seq` fall into runs: the next entry (`seq + 1`) continues a run when
   * its `prev` is this entry's digest. Only a run's last signature is checked (unless
   * remembered); if it holds, so does the run, every entry of it being what the author signed
   * through the digests its signed `prev` chains; if not, that entry is refused and the rest
   * of the run is checked entry by entry. Entries without `prev` are runs of one. The
   * signatures go to `verifier` in one call (two after a failed run). Certificates are
   * looked up now: one learned while the signatures are checked changes nothing here.
   */
  async verifyAll(entries: readonly Fields[], verifier: Verifier = verifyHere): Promise<(Identity | null)[]> {
    const users: (Identity | null)[] = new Array<Identity | null>(entries.length).fill(null);
    const prepared: (Prepared | undefined)[] = new Array<Prepared | undefined>(entries.length);
    const byAuthor = new Map<string, number[]>();
    entries.forEach((entry, i) => {
      const cert = typeof entry.author === "string" ? this.certs.get(entry.author) : undefined;
      if (cert === undefined) {
        this.refuse("unknown_author");
        return;
      }
      const sig = signatureBytes(entry.sig);
      if (sig === null) {
        this.refuse("bad_signature");
        return;
      }
      const text = entryText(this.room, entry);
      // What a valid signature is remembered with (repeats(): the fields, or nothing but the
      // log's copy); not at all for a long entry (chars -1).
      const chars = text.length <= VERIFIED_TEXT_MAX ? text.length : -1;
      const signed = chars < 0 || this.held !== undefined ? null : signedFields(cert.key, entry) ?? { key: cert.key, signed: text };
      const signature = entry.sig as string;
      prepared[i] = { cert, sig, data: utf8.encode(text), signature, repeat: this.repeats(entry, cert.key), signed, chars };
      const mine = byAuthor.get(cert.peer);
      if (mine === undefined) byAuthor.set(cert.peer, [i]);
      else mine.push(i);
    });
    const runs: number[][] = [];
    for (const indices of byAuthor.values()) {
      if (indices.length > 1) indices.sort((a, b) => (seqOf(entries[a]) ?? 0) - (seqOf(entries[b]) ?? 0));
      let run = [indices[0]];
      for (let n = 1; n < indices.length; n += 1) {
        const i = indices[n];
        const last = run[run.length - 1];
        const seq = seqOf(entries[last]);
        const prev = entries[i].prev;
        const held = prepared[last] as Prepared;
        const linked =
          typeof prev === "string" && seq !== null && seqOf(entries[i]) === seq + 1 && prev === digest(held.data, held.sig);
        if (!linked) {
          runs.push(run);
          run = [];
        }
        run.push(i);
      }
      runs.push(run);
    }
    const vouch = (i: number): void => {
      users[i] = (prepared[i] as Prepared).cert.user;
    };
    const valid = await this.check(
      runs.map((run) => prepared[run[run.length - 1]] as Prepared),
      verifier,
    );
    const again: number[] = [];
    runs.forEach((run, n) => {
      if (valid[n]) {
        run.forEach(vouch);
      } else {
        this.refuse("bad_signature");
        again.push(...run.slice(0, -1));
      }
    });
    if (again.length > 0) {
      const each = await this.check(
        again.map((i) => prepared[i] as Prepared),
        verifier,
      );
      again.forEach((i, n) => (each[n] ? vouch(i) : this.refuse("bad_signature")));
    }
    return users;
  }

  /** Whether each signature is valid: remembered ones without a check, the others checked by
   *  `verifier` in one call (and remembered when valid). */
  private async check(entries: readonly Prepared[], verifier: Verifier): Promise<boolean[]> {
    const answers = new Array<boolean>(entries.length).fill(true);
    const checks: SignatureCheck[] = [];
    const asked: number[] = [];
    entries.forEach((entry, n) => {
      if (entry.repeat) return;
      checks.push({ key: entry.cert.key, sig: entry.sig, data: entry.data });
      asked.push(n);
    });
    if (checks.length === 0) return answers;
    this.checks += checks.length;
    const valid = await verifier(checks);
    asked.forEach((n, k) => {
      if (valid[k] !== true) {
        answers[n] = false;
        return;
      }
      const { signature, signed, chars } = entries[n];
      if (chars < 0) return;
      if (this.verified.size >= VERIFIED_HELD || this.verifiedChars + chars > VERIFIED_CHARS) {
        this.verified.clear(); // a bound, not a policy
        this.verifiedChars = 0;
      }
      this.verified.set(signature, signed);
      this.verifiedChars += chars;
    });
    return answers;
  }

}

/** An entry ready to check: its author's certificate, signature (bytes and text), signed
 *  bytes, whether it repeats a signature verified here, and what a valid signature is
 *  remembered with (`chars` -1: too long to remember). */
interface Prepared {
  cert: Certificate;
  sig: Uint8Array<ArrayBuffer>;
  data: Uint8Array<ArrayBuffer>;
  signature: string;
  repeat: boolean;
  signed: Signed | null;
  chars: number;
}

function seqOf(entry: Fields): number | null {
  return typeof entry.seq === "number" && Number.isSafeInteger(entry.seq) ? entry.seq : null;
}
