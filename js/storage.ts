// The local copy of each room: every message this browser has seen, in IndexedDB, written
// as it arrives (only what is new) and read back newest first on reload, before any peer
// answers. Replaces the localStorage copy of earlier versions (migrated once, then freed).
//
// One database "nbchat", one object store keyed by [room, message id] with an index in the
// log's order [room, clock, author, seq] (IndexedDB compares strings by code unit, like the
// log). A room is the widget's scope: base URL and room name.

import type { ChatMessage } from "./protocol";

const DB_NAME = "nbchat";
const DB_VERSION = 2;
const STORE = "messages";
const ORDER = "order";
/** The certificates of the authors of the stored messages (signed rooms), by room and peer. */
const CERTS = "certs";
/** Where earlier versions kept the newest ~1.5 MB of each room, in localStorage. */
export const LEGACY_PREFIX = "nbchat:v1:log:";
/** The size policy: a room keeps its newest this many messages on this computer. */
export const MAX_STORED_MESSAGES = 100_000;
/** Written at most this long after a message arrives (one transaction for a burst). */
const FLUSH_DELAY_MS = 50;
/** …and at most this much later when the page is never idle. */
const IDLE_TIMEOUT_MS = 1_000;
/** While a history answer pours in, nothing is written until its batches stop for this long
 *  (on a busy 2-core machine a sender paused 300 ms mid-answer: docs/benchmarks.md)… */
export const CATCH_UP_QUIET_MS = 1_000;
/** …or this long after the catch-up began (a never-ending stream is still stored). */
export const CATCH_UP_MAX_MS = 5_000;
/** Messages written per transaction when the page is idle (a slice, not one long task). */
const IDLE_SLICE = 1_000;

export interface LocalCopyStats {
  messages: number;
  /** Approximate: the messages' JSON size. */
  bytes: number;
}

/** A stored message: the message and its room. */
type Row = ChatMessage & { room: string };

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}

function openDatabase(factory: IDBFactory): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = factory.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) {
        const store = db.createObjectStore(STORE, { keyPath: ["room", "id"] });
        store.createIndex(ORDER, ["room", "clock", "author", "seq"]);
      }
      if (!db.objectStoreNames.contains(CERTS)) db.createObjectStore(CERTS, { keyPath: ["room", "peer"] });
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the schema: let it, we reopen on next load.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error("the nbchat database is blocked by another tab"));
  });
}

function isRow(value: unknown): value is ChatMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m.id === "string" &&
    typeof m.author === "string" &&
    typeof m.clock === "number" &&
    Number.isFinite(m.clock) &&
    typeof m.seq === "number" &&
    Number.isFinite(m.seq)
  );
}

function sizeOf(message: unknown): number {
  return JSON.stringify(message).length;
}

/** Databases opened per IDBFactory, so every room of a page shares one connection. */
const databases = new WeakMap<IDBFactory, Promise<IDBDatabase | null>>();

/** Move every room localStorage holds into the database, then free localStorage. */
async function migrate(db: IDBDatabase, legacy: Storage): Promise<void> {
  const keys: string[] = [];
  for (let i = 0; i < legacy.length; i += 1) {
    const key = legacy.key(i);
    if (key !== null && key.startsWith(LEGACY_PREFIX)) keys.push(key);
  }
  if (keys.length === 0) return;
  const tx = db.transaction(STORE, "readwrite");
  const store = tx.objectStore(STORE);
  for (const key of keys) {
    const room = key.slice(LEGACY_PREFIX.length);
    let messages: unknown = [];
    try {
      messages = JSON.parse(legacy.getItem(key) ?? "[]");
    } catch {
      console.warn(`nbchat: dropping the unreadable stored log ${key}`);
    }
    for (const message of Array.isArray(messages) ? messages : []) {
      if (!isRow(message)) continue;
      try {
        store.put({ ...message, room });
      } catch (error) {
        console.warn(`nbchat: skipping a stored message of ${key}`, error);
      }
    }
  }
  await done(tx);
  for (const key of keys) legacy.removeItem(key);
}

function database(factory: IDBFactory, legacy: Storage | null): Promise<IDBDatabase | null> {
  let db = databases.get(factory);
  if (db === undefined) {
    db = openDatabase(factory).then(
      async (opened) => {
        if (legacy !== null) {
          try {
            await migrate(opened, legacy);
          } catch (error) {
            console.warn("nbchat: could not move the old localStorage copy to IndexedDB", error);
          }
        }
        return opened;
      },
      (error) => {
        console.warn("nbchat: no local copy of the chat (IndexedDB unavailable)", error);
        return null;
      },
    );
    databases.set(factory, db);
  }
  return db;
}

export interface LocalCopyOptions {
  /** IndexedDB (null: no local copy). */
  indexedDB?: IDBFactory | null;
  /** Where earlier versions kept their copy, to migrate from and free (null: nothing to migrate). */
  legacy?: Storage | null;
  /** The size policy (tests lower it). */
  maxMessages?: number;
  /** Told whenever the stats change (after loading, writing, clearing). */
  onStats?: (stats: LocalCopyStats) => void;
  /** The catch-up hold (tests shorten it). */
  catchUpQuietMs?: number;
  catchUpMaxMs?: number;
}

/** One room's local copy. Reads are async; writes are queued and batched. */
export class LocalCopy {
  private readonly db: Promise<IDBDatabase | null>;
  private readonly ids = new Set<string>();
  private bytes = 0;
  private loaded = false;
  private pending = new Map<string, ChatMessage>();
  /** Ids taken from `pending` whose write has not finished. */
  private readonly writing = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  /** A write is scheduled (its timer, or an idle callback, is pending). */
  private scheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  private readonly onStats: (stats: LocalCopyStats) => void;
  private readonly maxMessages: number;
  private readonly quietMs: number;
  private readonly holdMaxMs: number;
  /** A catch-up (history batches arriving): when it began, and when its last batch came. */
  private catchUpSince: number | null = null;
  private catchUpLast = 0;
  /** Whether IndexedDB is there at all (else the UI shows nothing about a local copy). */
  readonly available: boolean;

  constructor(
    private readonly room: string,
    options: LocalCopyOptions = {},
  ) {
    const factory =
      options.indexedDB !== undefined ? options.indexedDB : typeof indexedDB === "undefined" ? null : indexedDB;
    const legacy =
      options.legacy !== undefined ? options.legacy : typeof localStorage === "undefined" ? null : localStorage;
    this.available = factory !== null;
    this.db = factory === null ? Promise.resolve(null) : database(factory, legacy);
    this.onStats = options.onStats ?? (() => undefined);
    this.maxMessages = options.maxMessages ?? MAX_STORED_MESSAGES;
    this.quietMs = options.catchUpQuietMs ?? CATCH_UP_QUIET_MS;
    this.holdMaxMs = options.catchUpMaxMs ?? CATCH_UP_MAX_MS;
  }

  get stats(): LocalCopyStats {
    return { messages: this.ids.size, bytes: this.bytes };
  }

  private range(): IDBKeyRange {
    return IDBKeyRange.bound([this.room], [this.room, []]);
  }

  /** The newest `limit` messages, in log order: what the first screen shows. */
  async loadNewest(limit: number): Promise<unknown[]> {
    const db = await this.db;
    if (db === null) return [];
    const index = db.transaction(STORE, "readonly").objectStore(STORE).index(ORDER);
    const rows: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      const cursor = index.openCursor(this.range(), "prev");
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (c === null || rows.length >= limit) return resolve();
        rows.push(c.value);
        c.continue();
      };
      cursor.onerror = () => reject(cursor.error);
    });
    return rows.reverse();
  }

  /** Every stored message of the room, in log order. */
  async loadAll(): Promise<unknown[]> {
    const db = await this.db;
    if (db === null) return [];
    const rows = await request(db.transaction(STORE, "readonly").objectStore(STORE).index(ORDER).getAll(this.range()));
    this.ids.clear();
    this.bytes = 0;
    for (const row of rows as Row[]) {
      this.ids.add(row.id);
      this.bytes += sizeOf(row) - this.room.length - 10;
    }
    this.loaded = true;
    this.onStats(this.stats);
    return rows;
  }

  /** Keep `messages` (new ones, or first-hand copies replacing relayed ones). */
  save(messages: readonly ChatMessage[]): void {
    if (!this.available) return;
    for (const message of messages) this.pending.set(message.id, message);
    this.schedule(FLUSH_DELAY_MS);
  }

  /**
   * A history answer's batch arrived (or was delivered): writes wait until the batches stop
   * for CATCH_UP_QUIET_MS, or CATCH_UP_MAX_MS after the first, so storing (IndexedDB clones
   * every message on the page's thread, some 30–60 µs each) never competes with checking
   * and showing the history. Nothing is dropped: everything queued is written afterwards.
   */
  catchingUp(): void {
    const at = Date.now();
    if (this.catchUpSince === null || at - this.catchUpLast >= this.quietMs) this.catchUpSince = at;
    this.catchUpLast = at;
  }

  /** How long writes still wait for a catch-up (0: not holding). */
  private holdLeft(): number {
    if (this.catchUpSince === null) return 0;
    const at = Date.now();
    const left = Math.min(this.catchUpLast + this.quietMs, this.catchUpSince + this.holdMaxMs) - at;
    if (left <= 0) {
      this.catchUpSince = null;
      return 0;
    }
    return left;
  }

  /** Write what is queued after `delay`, once no catch-up holds it, in idle moments. */
  private schedule(delay: number): void {
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    // Writing costs the page some 30 µs a message (IndexedDB clones each): wait while a
    // history pours in, then for an idle moment, and write in slices.
    this.flushTimer = setTimeout(() => this.due(), Math.max(delay, this.holdLeft()));
  }

  private due(): void {
    this.flushTimer = null;
    const left = this.holdLeft();
    if (left > 0) {
      this.flushTimer = setTimeout(() => this.due(), left);
    } else if (typeof requestIdleCallback === "function") {
      requestIdleCallback(() => this.idle(), { timeout: IDLE_TIMEOUT_MS });
    } else {
      this.scheduled = false;
      void this.flush();
    }
  }

  /** An idle moment: write a slice of what is queued, the rest in the next ones. */
  private idle(): void {
    if (!this.scheduled || this.flushTimer !== null) return; // flushed or cleared meanwhile
    const left = this.holdLeft();
    if (left > 0) {
      // A catch-up began meanwhile: wait for it.
      this.flushTimer = setTimeout(() => this.due(), left);
      return;
    }
    this.scheduled = false;
    const batch: ChatMessage[] = [];
    for (const [id, message] of this.pending) {
      if (batch.length >= IDLE_SLICE) break;
      batch.push(message);
      this.pending.delete(id);
      this.writing.add(id);
    }
    this.flushing = this.flushing.then(() => this.write(batch));
    this.schedule(0);
  }

  /** Take `ids` out of the copy (entries found to be off the record): queued ones are
   *  dropped, stored ones deleted. */
  forget(all: readonly string[]): void {
    // Only what is stored, queued or being written (the verdict is recomputed on every switch).
    const ids = all.filter((id) => this.ids.has(id) || this.pending.has(id) || this.writing.has(id));
    if (!this.available || ids.length === 0) return;
    for (const id of ids) this.pending.delete(id);
    this.flushing = this.flushing.then(async () => {
      const db = await this.db;
      if (db === null) return;
      try {
        const tx = db.transaction(STORE, "readwrite");
        const store = tx.objectStore(STORE);
        const gone: string[] = [];
        for (const id of ids) {
          store.delete([this.room, id]);
          if (this.ids.delete(id)) gone.push(id);
        }
        await done(tx);
        if (gone.length > 0) this.onStats(this.stats);
      } catch (error) {
        console.warn(`nbchat: could not take messages of ${this.room} out of the local copy`, error);
      }
    });
  }

  /** Write what is queued now; resolves once it is on disk. */
  flush(): Promise<void> {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.scheduled = false;
    const batch = [...this.pending.values()];
    for (const message of batch) this.writing.add(message.id);
    this.pending = new Map();
    this.flushing = this.flushing.then(() => this.write(batch));
    return this.flushing;
  }

  private async write(batch: ChatMessage[]): Promise<void> {
    try {
      await this.writeBatch(batch);
    } finally {
      for (const message of batch) this.writing.delete(message.id);
    }
  }

  private async writeBatch(batch: ChatMessage[]): Promise<void> {
    const db = await this.db;
    if (db === null || batch.length === 0) return;
    try {
      const tx = db.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      for (const message of batch) store.put({ ...message, room: this.room });
      await done(tx);
      for (const message of batch) {
        if (this.ids.has(message.id)) continue;
        this.ids.add(message.id);
        this.bytes += sizeOf(message);
      }
      if (this.loaded && this.ids.size > this.maxMessages) await this.trim(db, this.ids.size - this.maxMessages);
      this.onStats(this.stats);
    } catch (error) {
      // Quota exceeded or the like: history still syncs from peers, only the offline copy is short.
      console.warn(`nbchat: could not store messages of ${this.room}`, error);
    }
  }

  /** The size policy: drop the `count` oldest. */
  private async trim(db: IDBDatabase, count: number): Promise<void> {
    const tx = db.transaction(STORE, "readwrite");
    const cursor = tx.objectStore(STORE).index(ORDER).openCursor(this.range());
    let left = count;
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (c === null || left <= 0) return;
      const row = c.value as Row;
      this.ids.delete(row.id);
      this.bytes -= sizeOf(row) - this.room.length - 10;
      c.delete();
      left -= 1;
      c.continue();
    };
    await done(tx);
  }

  /** Keep the certificates of authors, so that stored messages can be relayed after a reload. */
  saveCerts(certs: readonly { peer: string }[]): void {
    if (!this.available || certs.length === 0) return;
    this.flushing = this.flushing.then(async () => {
      const db = await this.db;
      if (db === null) return;
      try {
        const tx = db.transaction(CERTS, "readwrite");
        for (const cert of certs) tx.objectStore(CERTS).put({ room: this.room, peer: cert.peer, cert });
        await done(tx);
      } catch (error) {
        console.warn(`nbchat: could not store certificates of ${this.room}`, error);
      }
    });
  }

  /** The stored certificates of this room's authors (checked again by whoever uses them). */
  async loadCerts(): Promise<unknown[]> {
    const db = await this.db;
    if (db === null) return [];
    const rows = await request(db.transaction(CERTS, "readonly").objectStore(CERTS).getAll(this.range()));
    return (rows as { cert: unknown }[]).map((row) => row.cert);
  }

  /** Forget this room's local copy (peers still have it; the page keeps what it shows). */
  async clear(): Promise<void> {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.scheduled = false;
    this.pending.clear();
    await this.flushing;
    const db = await this.db;
    if (db !== null) {
      const tx = db.transaction([STORE, CERTS], "readwrite");
      tx.objectStore(STORE).delete(this.range());
      tx.objectStore(CERTS).delete(this.range());
      await done(tx);
    }
    this.ids.clear();
    this.bytes = 0;
    this.onStats(this.stats);
  }
}
