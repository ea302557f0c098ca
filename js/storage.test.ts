import "fake-indexeddb/auto";
import { IDBFactory } from "fake-indexeddb";
import { describe, expect, it, vi } from "vitest";
import type { ChatMessage } from "./protocol";
import { LEGACY_PREFIX, LocalCopy, type LocalCopyStats } from "./storage";

const user = { username: "ann", name: "Ann", display_name: "Ann", initials: null, color: null, avatar_url: null };

function message(author: string, seq: number, clock: number, text = `${author} ${seq}`): ChatMessage {
  return { id: `${author}:${seq}`, author, seq, clock, time: clock, text, user };
}

/** A Storage over a Map, as localStorage behaves. */
class MemoryStorage implements Storage {
  private readonly items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  clear(): void {
    this.items.clear();
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

describe("the local copy in IndexedDB", () => {
  it("writes only what it is given, and reads the room back in log order, newest screen first", async () => {
    const factory = new IDBFactory();
    const stats: LocalCopyStats[] = [];
    const copy = new LocalCopy("lab|room", { indexedDB: factory, legacy: null, onStats: (s) => stats.push(s) });
    expect(await copy.loadAll()).toEqual([]);
    // Out of order on purpose: the copy keeps the log's order (clock, author, seq).
    copy.save([message("b", 1, 3), message("a", 1, 1)]);
    copy.save([message("a", 2, 2), message("c", 1, 3)]);
    await copy.flush();
    const other = new LocalCopy("lab|other", { indexedDB: factory, legacy: null });
    other.save([message("z", 1, 1)]);
    await other.flush();

    const again = new LocalCopy("lab|room", { indexedDB: factory, legacy: null });
    const all = (await again.loadAll()) as ChatMessage[];
    expect(all.map((m) => m.id)).toEqual(["a:1", "a:2", "b:1", "c:1"]);
    expect(all[0]).toMatchObject({ text: "a 1", user });
    expect(((await again.loadNewest(2)) as ChatMessage[]).map((m) => m.id)).toEqual(["b:1", "c:1"]);
    expect(again.stats.messages).toBe(4);
    expect(again.stats.bytes).toBeGreaterThan(4 * 50);
    expect(stats[stats.length - 1].messages).toBe(4);
  });

  it("keeps a first-hand copy in place of a relayed one with the same id, counted once", async () => {
    const copy = new LocalCopy("r", { indexedDB: new IDBFactory(), legacy: null });
    await copy.loadAll();
    copy.save([message("a", 1, 1, "forged")]);
    await copy.flush();
    copy.save([message("a", 1, 1, "real")]);
    await copy.flush();
    expect(((await copy.loadAll()) as ChatMessage[]).map((m) => m.text)).toEqual(["real"]);
    expect(copy.stats.messages).toBe(1);
  });

  it("moves what localStorage holds for every room into IndexedDB, then frees localStorage", async () => {
    const factory = new IDBFactory();
    const legacy = new MemoryStorage();
    legacy.setItem(`${LEGACY_PREFIX}lab|one`, JSON.stringify([message("a", 1, 1), { junk: true }, message("a", 2, 2)]));
    legacy.setItem(`${LEGACY_PREFIX}lab|two`, JSON.stringify([message("b", 1, 1)]));
    legacy.setItem(`${LEGACY_PREFIX}lab|bad`, "{not json");
    legacy.setItem("@jupyterlab/something", "theirs");
    const one = new LocalCopy("lab|one", { indexedDB: factory, legacy });
    expect(((await one.loadAll()) as ChatMessage[]).map((m) => m.id)).toEqual(["a:1", "a:2"]);
    const two = new LocalCopy("lab|two", { indexedDB: factory, legacy });
    expect(((await two.loadAll()) as ChatMessage[]).map((m) => m.id)).toEqual(["b:1"]);
    expect([...Array(legacy.length).keys()].map((i) => legacy.key(i))).toEqual(["@jupyterlab/something"]);
  });

  it("keeps the newest messages up to its size policy, and Clear forgets only this room", async () => {
    const factory = new IDBFactory();
    const copy = new LocalCopy("r", { indexedDB: factory, legacy: null, maxMessages: 3 });
    const other = new LocalCopy("s", { indexedDB: factory, legacy: null });
    await copy.loadAll();
    copy.save([1, 2, 3, 4, 5].map((n) => message("a", n, n)));
    other.save([message("b", 1, 1)]);
    await Promise.all([copy.flush(), other.flush()]);
    expect(((await copy.loadAll()) as ChatMessage[]).map((m) => m.id)).toEqual(["a:3", "a:4", "a:5"]);
    expect(copy.stats.messages).toBe(3);
    await copy.clear();
    expect(copy.stats).toEqual({ messages: 0, bytes: 0 });
    expect(await new LocalCopy("r", { indexedDB: factory, legacy: null }).loadAll()).toEqual([]);
    expect(await new LocalCopy("s", { indexedDB: factory, legacy: null }).loadAll()).toHaveLength(1);
  });

  it("writes nothing while a history answer pours in, and everything once it has ended", async () => {
    const factory = new IDBFactory();
    const stored = async (): Promise<string[]> =>
      ((await new LocalCopy("r", { indexedDB: factory, legacy: null }).loadAll()) as ChatMessage[]).map((m) => m.id);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    try {
      const copy = new LocalCopy("r", { indexedDB: factory, legacy: null, catchUpQuietMs: 300, catchUpMaxMs: 5_000 });
      await copy.loadAll();
      // 20 batches of 100, one every 100 ms: two seconds of catch-up, far past the usual
      // 50 ms write delay.
      for (let b = 0; b < 20; b += 1) {
        copy.catchingUp();
        copy.save(Array.from({ length: 100 }, (_, i) => message("a", b * 100 + i + 1, b * 100 + i + 1)));
        await vi.advanceTimersByTimeAsync(100);
        expect(await stored()).toEqual([]);
      }
      // Quiet for less than the gap: still nothing.
      await vi.advanceTimersByTimeAsync(150);
      expect(await stored()).toEqual([]);
      // The batches have stopped: all of them are written.
      await vi.advanceTimersByTimeAsync(200);
      await vi.waitFor(async () => expect(await stored()).toHaveLength(2_000));
      expect(copy.stats.messages).toBe(2_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it("still stores a catch-up that never ends, after its cap", async () => {
    const factory = new IDBFactory();
    const stored = async (): Promise<number> => (await new LocalCopy("r", { indexedDB: factory, legacy: null }).loadAll()).length;
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    try {
      const copy = new LocalCopy("r", { indexedDB: factory, legacy: null, catchUpQuietMs: 300, catchUpMaxMs: 1_000 });
      await copy.loadAll();
      let seq = 0;
      for (let t = 0; t < 900; t += 100) {
        copy.catchingUp();
        copy.save([message("a", ++seq, seq)]);
        await vi.advanceTimersByTimeAsync(100);
      }
      expect(await stored()).toBe(0);
      for (let t = 0; t < 400; t += 100) {
        copy.catchingUp();
        copy.save([message("a", ++seq, seq)]);
        await vi.advanceTimersByTimeAsync(100);
      }
      await vi.waitFor(async () => expect(await stored()).toBeGreaterThanOrEqual(9));
    } finally {
      vi.useRealTimers();
    }
  });

  it("is simply absent without IndexedDB", async () => {
    const copy = new LocalCopy("r", { indexedDB: null, legacy: null });
    expect(copy.available).toBe(false);
    copy.save([message("a", 1, 1)]);
    await copy.flush();
    expect(await copy.loadAll()).toEqual([]);
  });
});

describe("ChatProxy with its local copy", () => {
  it("shows the stored room before any server or peer answers, and keeps what it sends", async () => {
    const { ChatProxy } = await import("./ChatProxy");
    const factory = new IDBFactory();
    const page = { xsrfToken: "", baseUrl: "/lab/", wsOrigin: "ws://127.0.0.1:8888", secure: false, hostname: "127.0.0.1", port: 8888 };
    const seed = new LocalCopy("/lab/|room", { indexedDB: factory, legacy: null });
    seed.save(Array.from({ length: 500 }, (_, i) => message("a", i + 1, i + 1)));
    await seed.flush();
    const proxy = new ChatProxy({
      room: "room",
      page,
      storage: null,
      indexedDB: factory,
      fetch: (() => new Promise(() => undefined)) as unknown as typeof fetch,
    });
    await vi.waitFor(() => expect(proxy.state.messages).toHaveLength(500));
    expect(proxy.state.messages[499].text).toBe("a 500");
    expect(proxy.state.localCopy).toEqual({ messages: 500, bytes: expect.any(Number) });
    await proxy.clearLocalCopy();
    await vi.waitFor(() => expect(proxy.state.localCopy?.messages).toBe(0));
    // What the page shows stays; a reload would come back empty.
    expect(proxy.state.messages).toHaveLength(500);
    expect(await new LocalCopy("/lab/|room", { indexedDB: factory, legacy: null }).loadAll()).toEqual([]);
    proxy.destroy();
  });
  it("forgets entries found to be off the record, queued or stored", async () => {
    const factory = new IDBFactory();
    const copy = new LocalCopy("lab|room", { indexedDB: factory, legacy: null });
    copy.save([message("a", 1, 1), message("a", 2, 2)]);
    await copy.flush();
    copy.save([message("a", 3, 3)]);
    copy.forget(["a:2", "a:3", "a:9"]);
    await copy.flush();
    const again = new LocalCopy("lab|room", { indexedDB: factory, legacy: null });
    expect(((await again.loadAll()) as ChatMessage[]).map((m) => m.id)).toEqual(["a:1"]);
    expect(copy.stats.messages).toBe(1);
  });
});
