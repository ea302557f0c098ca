import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AnyModel } from "@anywidget/types";
import type { ChatProxy } from "./ChatProxy";
import type { ChatState } from "./chatState";
import { type ChatModel, KernelBridge } from "./kernelBridge";
import type { ChatMessage, Identity } from "./protocol";

const ann: Identity = { username: "ann", name: "ann", display_name: "Ann", initials: null, color: null, avatar_url: null };

function message(author: string, seq: number, clock: number): ChatMessage {
  return { id: `${author}:${seq}`, author, seq, clock, time: clock, text: `${author}${seq}`, user: ann };
}

class FakeModel {
  values: Record<string, unknown> = { room: "r", users: [], status: "", peer_id: "", _instance: "i", _owner: "" };
  sent: any[] = [];
  saves = 0;
  private handlers = new Map<string, (() => void)[]>();
  get(key: string): unknown {
    return this.values[key];
  }
  set(key: string, value: unknown): void {
    this.values[key] = value;
  }
  on(name: string, callback: () => void): void {
    this.handlers.set(name, [...(this.handlers.get(name) ?? []), callback]);
  }
  send(content: unknown): void {
    this.sent.push(content);
  }
  save_changes(): void {
    this.saves += 1;
  }
  /** The kernel elected an owner: the change arrives like any trait sync. */
  setOwner(owner: string): void {
    this.values._owner = owner;
    for (const callback of this.handlers.get("change:_owner") ?? []) callback();
  }
}

class FakeProxy {
  listener: ((state: ChatState) => void) | null = null;
  posted: string[] = [];
  state: ChatState = {
    phase: "online",
    status: "Connected to 0 peers",
    cannotSend: null,
    selfId: "p-me",
    self: ann,
    users: [{ peer_id: "p-me", user: ann }],
    rosterKnown: true,
    messages: [],
    entries: [],
    typing: "",
    maxMessageBytes: 65536,
    notice: null,
    audience: null,
  };
  subscribe(listener: (state: ChatState) => void): () => void {
    this.listener = listener;
    listener(this.state);
    return () => {
      this.listener = null;
    };
  }
  update(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    this.listener?.(this.state);
  }
  send(text: string): null {
    this.posted.push(text);
    return null;
  }
}

function setup(initial: Partial<ChatState> = {}, owner = ""): { model: FakeModel; proxy: FakeProxy; bridge: KernelBridge } {
  const model = new FakeModel();
  model.values._owner = owner;
  const proxy = new FakeProxy();
  proxy.state = { ...proxy.state, ...initial };
  const bridge = new KernelBridge(model as unknown as AnyModel<ChatModel>, proxy as unknown as ChatProxy);
  return { model, proxy, bridge };
}

describe("KernelBridge", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("tells the kernel which peer this view is, once per id, and claims an unowned widget once", () => {
    const { model, proxy } = setup();
    proxy.update({ status: "Connected to 1 peer" });
    expect(model.sent).toEqual([
      { type: "here", peer_id: "p-me" },
      { type: "claim", peer_id: "p-me", replaces: "", present: ["p-me"] },
    ]);
  });

  it("does not take over from an owner it cannot see until the roster is known", () => {
    const { model, proxy } = setup({ rosterKnown: false }, "p-other");
    expect(model.sent).toEqual([{ type: "here", peer_id: "p-me" }]);
    proxy.update({ rosterKnown: true });
    expect(model.sent).toEqual([
      { type: "here", peer_id: "p-me" },
      { type: "claim", peer_id: "p-me", replaces: "p-other", present: ["p-me"] },
    ]);
  });

  it("posts what the kernel sends only when addressed to this view's peer", () => {
    const { model, proxy, bridge } = setup();
    model.setOwner("p-other");
    bridge.onCustom({ type: "send", text: "not for me", to: "p-other" });
    model.setOwner("p-me");
    bridge.onCustom({ type: "send", text: "**result**", to: "p-me" });
    bridge.onCustom({ type: "bogus" });
    expect(proxy.posted).toEqual(["**result**"]);
  });

  it("as owner mirrors users and status, and patches messages from the first difference", async () => {
    const { model, proxy } = setup();
    model.setOwner("p-me");
    const a1 = message("a", 1, 1);
    const a2 = message("a", 2, 3);
    proxy.update({ entries: [a1, a2], status: "Connected to 1 peer" });
    await vi.advanceTimersByTimeAsync(300);
    expect(model.sent.filter((m) => m.type === "messages")).toEqual([
      { type: "messages", from: 0, messages: [a1, a2], done: true },
    ]);
    expect(model.values.status).toBe("Connected to 1 peer");
    expect(model.values.peer_id).toBe("p-me");
    expect(model.saves).toBe(1);

    model.sent = [];
    const late = message("b", 1, 2); // ordered between a1 and a2
    proxy.update({ entries: [a1, late, a2] });
    await vi.advanceTimersByTimeAsync(300);
    const patches = model.sent.filter((m) => m.type === "messages");
    expect(patches.map((p) => [p.from, p.messages.map((m: ChatMessage) => m.id)])).toEqual([[1, ["b:1", "a:2"]]]);
  });

  it("patches a message whose id stayed but whose content changed (a forged relay replaced)", async () => {
    const { model, proxy } = setup();
    model.setOwner("p-me");
    const a1 = message("a", 1, 1);
    const forged = { ...message("a", 2, 2), text: "forged" };
    const a3 = message("a", 3, 3);
    proxy.update({ entries: [a1, forged, a3] });
    await vi.advanceTimersByTimeAsync(300);
    model.sent = [];
    const real = message("a", 2, 2);
    proxy.update({ entries: [a1, real, a3] });
    await vi.advanceTimersByTimeAsync(300);
    const patches = model.sent.filter((m) => m.type === "messages");
    expect(patches.map((p) => [p.from, p.messages.map((m: ChatMessage) => m.text)])).toEqual([[1, ["a2", "a3"]]]);
  });

  it("sends a long history in several patches", async () => {
    const { model, proxy } = setup();
    model.setOwner("p-me");
    const many = Array.from({ length: 2_500 }, (_, i) => message("a", i + 1, i + 1));
    proxy.update({ entries: many });
    await vi.advanceTimersByTimeAsync(300);
    const patches = model.sent.filter((m) => m.type === "messages");
    expect(patches.map((p) => [p.from, p.messages.length, p.done])).toEqual([
      [0, 1000, false],
      [1000, 1000, false],
      [2000, 500, true],
    ]);
  });

  it("does not mirror when another browser owns the widget", async () => {
    const { model, proxy } = setup();
    model.setOwner("p-other");
    proxy.update({ entries: [message("a", 1, 1)] });
    await vi.advanceTimersByTimeAsync(300);
    expect(model.sent.filter((m) => m.type === "messages")).toEqual([]);
    expect(model.saves).toBe(0);
  });
});
