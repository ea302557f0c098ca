import { describe, expect, it } from "vitest";
import type { ChatMessage } from "./protocol";
import { LogStore } from "./storage";

function memory(): Storage {
  const items = new Map<string, string>();
  return {
    get length() {
      return items.size;
    },
    clear: () => items.clear(),
    getItem: (key) => items.get(key) ?? null,
    key: (i) => [...items.keys()][i] ?? null,
    removeItem: (key) => void items.delete(key),
    setItem: (key, value) => void items.set(key, value),
  };
}

const user = { username: "a", name: "a", display_name: "a", initials: null, color: null, avatar_url: null };
const message = (seq: number, text: string): ChatMessage => ({ id: `A:${seq}`, author: "A", seq, clock: seq, time: seq, text, user });

describe("LogStore", () => {
  it("leaves out a message too big to keep (a shared figure) instead of storing nothing", () => {
    const store = new LogStore("room", memory());
    const figure = { ...message(3, "[image/png]"), mime: { "image/png": "A".repeat(2_000_000) } };
    store.save([message(1, "one"), message(2, "two"), figure]);
    expect((store.load() as ChatMessage[]).map((m) => m.id)).toEqual(["A:1", "A:2"]);
  });
});
