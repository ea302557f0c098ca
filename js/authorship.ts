// Signed entries in the browser (docs/protocol.md §4, *Signed entries*): our key pair and the
// server's certificate for it, signing what we write, sending the certificates of the authors
// ahead of their entries, and checking every entry that arrives. The rules are core/signing's
// CertBook; this is the I/O around it. Off when the server sends no `server_keys`.

import type { Certificate, Verifier } from "./core/signing";
import { CertBook, b64encode, entryDigest, generateKey, onWire, publicKey, rawSignature, signEntry, verifyHere } from "./core/signing";
import type { ChatFrame, HistoryFrame, MessageFrame } from "./core/frames";
import type { SessionConfig } from "./core/session";
import type { ChatMessage } from "./protocol";

type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface AuthorshipHost {
  /** The server's certificate for our public key `key` as peer `peerId`. */
  fetchCert(session: SessionConfig, peerId: string, key: string): Promise<unknown>;
  /** Certificates newly held (to keep them with the local copy). */
  learned(certs: Certificate[]): void;
  /** Where signatures are checked (js/verifier.ts's Worker); this thread when absent. */
  verifier?: Verifier;
  /** The entry the log holds for an entry's id (`CertBook`'s `held`: verified signatures
   *  are then remembered bound to it, not with a copy of what they cover). */
  held?: (entry: Record<string, unknown>) => Record<string, unknown> | undefined;
}

export class Authorship {
  private keys: Promise<CryptoKeyPair> | null = null;
  /** The private key of `keys` once made (a signature then starts at once, see sign()). */
  private privateKey: CryptoKey | null = null;
  private book: CertBook | null = null;
  /** Certificates read back from the local copy before we knew the room's server keys. */
  private stored: unknown[] = [];
  /** Per peer, the authors whose certificates went on its current link. */
  private readonly vouched = new Map<string, Set<string>>();
  /** Per peer, the last frame's delivery (settled once it is delivered or dropped). */
  private readonly inbound = new Map<string, Promise<void>>();
  /** Our own entries being signed, in order. */
  private signing: Promise<void> = Promise.resolve();
  /** Our last signed entry (author, seq, digest): the next one names it as `prev` (the hash
   *  chain, core/signing), so a catch-up checks one signature per run of ours. */
  private chain: { author: string; seq: number; digest: string } | null = null;
  /** Our entries handed to sign() whose signature is not made yet. */
  private signingNow = 0;

  constructor(private readonly host: AuthorshipHost) {}

  /** Whether entries are signed and checked in this room. */
  get active(): boolean {
    return this.book !== null;
  }

  /** Dropped entries and certificates by reason (`CertBook.refused`). */
  get refused(): Readonly<Record<string, number>> {
    return this.book?.refused ?? {};
  }

  /** Certificates from the local copy: learned once the room's server keys are known. */
  remember(certs: readonly unknown[]): void {
    if (this.book !== null) void this.learn(certs);
    else this.stored.push(...certs);
  }

  /** Get the server's certificate for our key as `peerId` (a new id keeps the same key). */
  async certify(session: SessionConfig, peerId: string): Promise<void> {
    const serverKeys = session.server_keys ?? [];
    if (serverKeys.length === 0) {
      this.book = null;
      return;
    }
    if (this.book === null || this.book.room !== session.key) {
      this.book = new CertBook(session.key, serverKeys, this.host.held);
      const stored = this.stored.splice(0);
      if (stored.length > 0) await this.book.learn(stored);
    }
    this.keys ??= generateKey();
    const pair = await this.keys;
    this.privateKey = pair.privateKey;
    const key = await publicKey(pair);
    const cert = await this.host.fetchCert(session, peerId, key);
    if (this.book.cert(peerId)?.key === key) return;
    const learned = await this.learn([cert]);
    if (!learned.includes(peerId)) throw new Error("the server's certificate for our key does not verify");
  }

  private async learn(certs: readonly unknown[]): Promise<string[]> {
    const book = this.book;
    if (book === null) return [];
    const learned = await book.learn(certs);
    if (learned.length > 0) this.host.learned(book.certsFor(learned));
    return learned;
  }

  /** Sign our new `message`, then `then` (send it): in the order we wrote them. */
  sign(message: ChatMessage, then: () => void): void {
    const book = this.book;
    const keys = this.keys;
    if (book === null || keys === null) {
      then();
      return;
    }
    // Our previous entry's digest goes in as `prev` (the hash chain), so a signature needs
    // the one before it. Several at once (a burst of reactions) are signed in turn; `then`
    // runs in order either way.
    const fields = message as unknown as Fields;
    const chain = (): void => {
      const last = this.chain;
      if (last !== null && last.author === message.author && last.seq === message.seq - 1) message.prev = last.digest;
    };
    const signed = (sig: string | null, error?: unknown): void => {
      this.signingNow -= 1;
      if (sig !== null) {
        message.sig = sig;
        const digest = entryDigest(book.room, fields);
        this.chain = digest === null ? null : { author: message.author, seq: message.seq, digest };
      } else {
        console.warn("nbchat: could not sign a message", error);
      }
      then();
    };
    // The chain goes on whatever `then` does.
    const sendFailed = (error: unknown): void => console.warn("nbchat: sending a signed message failed", error);
    this.signingNow += 1;
    if (this.signingNow === 1 && this.privateKey !== null) {
      // Typed one at a time, the one before is long done: the signature starts now, and
      // `then` is the very next thing to run once WebCrypto has it (a reaction on its own
      // promise, not one more hop behind it: the render that clears the message box waits
      // in the queue meanwhile, and the message leaves before it).
      chain();
      this.signing = rawSignature(this.privateKey, book.room, fields)
        .then(
          (raw) => signed(b64encode(new Uint8Array(raw))),
          (error: unknown) => signed(null, error),
        )
        .catch(sendFailed);
      return;
    }
    this.signing = this.signing
      .then(async () => {
        let sig: string | null = null;
        let failure: unknown;
        try {
          chain();
          sig = await signEntry((await keys).privateKey, book.room, fields);
        } catch (error) {
          failure = error;
        }
        signed(sig, failure);
      })
      .catch(sendFailed);
  }

  /**
   * Entries from an export file, checked as entries from a peer are: the file's certificates
   * are learned (each must verify with the server's keys, as a peer's do), then an entry is
   * kept only if its author's certificate vouches for it, with the certified identity (what
   * it claims is replaced); the others are dropped and counted, never shown as anyone. Not
   * records are passed on for the log to refuse. Unsigned rooms: everything passes as it is.
   */
  async checkImported(certs: readonly unknown[], entries: readonly unknown[]): Promise<{ kept: unknown[]; unverified: number }> {
    const book = this.book;
    if (book === null) return { kept: [...entries], unverified: 0 };
    await this.learn(certs);
    const records = entries.filter(isRecord);
    const checked = await book.verifyAll(records, this.verifier);
    const byEntry = new Map<unknown, (typeof checked)[number]>(records.map((m, i) => [m, checked[i]]));
    const users = entries.map((m) => (isRecord(m) ? byEntry.get(m) : undefined));
    const kept: unknown[] = [];
    let unverified = 0;
    entries.forEach((m, i) => {
      const user = users[i];
      if (user === null) unverified += 1;
      else kept.push(user === undefined ? m : { ...(m as Fields), user });
    });
    return { kept, unverified };
  }

  /** The certificates held for the authors of `entries` (to go with an export of them). */
  certsFor(entries: readonly ChatMessage[]): Certificate[] | undefined {
    return this.book?.certsFor(entries.map((m) => m.author));
  }

  /** A link to `peerId` opened or closed: its certificates start over. */
  linkChanged(peerId: string): void {
    this.vouched.delete(peerId);
  }

  /**
   * What to send `peerId` for `frame`: the frame carrying (`certs`) the certificates of its
   * authors that did not go on this link yet (one frame, not a `certs` frame ahead of it: a
   * packet fewer on every link an author's first entry crosses), each entry as it goes on the
   * wire (`onWire`: no `id`, no `user`); our own entries not signed yet are held back (they go
   * when signed, in their own `message` frame).
   */
  outgoing(peerId: string, frame: ChatFrame): ChatFrame[] {
    const book = this.book;
    if (book === null || (frame.type !== "message" && frame.type !== "history")) return [frame];
    let entries = frame.type === "message" ? [frame.message] : frame.messages;
    entries = entries.filter((m) => m.sig !== undefined).map(onWire);
    if (entries.length === 0) return [];
    const sent = this.vouched.get(peerId) ?? new Set<string>();
    this.vouched.set(peerId, sent);
    const certs = book.certsFor(entries.map((m) => m.author).filter((a) => !sent.has(a)));
    for (const cert of certs) sent.add(cert.peer);
    const out: MessageFrame | HistoryFrame =
      frame.type === "message" ? { type: "message", message: entries[0] } : { type: "history", messages: entries };
    if (certs.length > 0) out.certs = certs;
    return [out];
  }

  private get verifier(): Verifier {
    return this.host.verifier ?? verifyHere;
  }

  /**
   * Check a frame from `peerId` and hand what holds to `deliver`, in arrival order per peer:
   * certificates are learned; a `message` or `history` keeps only entries their author's
   * certificate vouches for, each with the certified identity. Other frames pass as they are.
   *
   * Pipelined: a frame's signatures are checked as soon as it arrives when every author's
   * certificate is already held (a held certificate is never replaced, so the frames ahead
   * cannot change the answer); otherwise, and for `certs` frames, checking waits until every
   * earlier frame from that peer is delivered, so certificates are learned before the entries
   * that need them. Delivery always waits for the frame ahead: the order is arrival order.
   */
  incoming(peerId: string, frame: ChatFrame, deliver: (frame: ChatFrame) => void): void {
    const book = this.book;
    if (book === null || (frame.type !== "certs" && frame.type !== "message" && frame.type !== "history")) {
      deliver(frame);
      return;
    }
    const previous = this.inbound.get(peerId) ?? Promise.resolve();
    let checked: Promise<ChatFrame | null>;
    if (frame.type === "certs") {
      checked = previous.then(async () => {
        await this.learn(frame.certs);
        return null;
      });
    } else {
      const raw = frame.type === "message" ? [{ ...frame.message, author: peerId }] : frame.messages;
      const entries = raw.filter((m): m is ChatMessage => typeof m === "object" && m !== null);
      const certs = Array.isArray(frame.certs) ? frame.certs : [];
      const check = async (): Promise<ChatFrame | null> => {
        const users = await book.verifyAll(entries as unknown as Fields[], this.verifier);
        const kept = entries.flatMap((m, i) => (users[i] === null ? [] : [{ ...m, user: users[i] } as ChatMessage]));
        if (kept.length < entries.length) {
          console.warn(`nbchat: dropped ${entries.length - kept.length} unverifiable entries from ${peerId}`);
        }
        if (kept.length === 0) return null;
        return frame.type === "message" ? { type: "message", message: kept[0] } : { type: "history", messages: kept };
      };
      // Certificates riding along are learned first (after the frames ahead, like a `certs` frame).
      checked = book.knows(entries as unknown as Fields[])
        ? check()
        : previous.then(async () => {
            if (certs.length > 0) await this.learn(certs);
            return check();
          });
    }
    // Handled below once the frames ahead are delivered; not an unhandled rejection meanwhile.
    checked.catch(() => undefined);
    // `previous` never rejects; a failed check drops its frame (and says so), the next go on.
    const next = previous.then(() => checked).then((result) => {
      if (result !== null) deliver(result);
    });
    const settled = next.catch((error: unknown) => console.warn(`nbchat: checking a frame from ${peerId} failed`, error));
    this.inbound.set(peerId, settled);
    void settled.then(() => {
      if (this.inbound.get(peerId) === settled) this.inbound.delete(peerId);
    });
  }
}
