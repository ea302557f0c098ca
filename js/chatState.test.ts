import { describe, expect, it } from "vitest";
import { type ConnectionFacts, Conversation, chatState } from "./chatState";
import { historyBatches } from "./core/sync";
import { CHUNK_THRESHOLD_BYTES } from "./core/chunking";
import type { ChatMessage } from "./protocol";

const me = { username: "me", name: "me", display_name: "Me", initials: null, color: null, avatar_url: null };

function facts(overrides: Partial<ConnectionFacts>): ConnectionFacts {
  return {
    phase: "online",
    openLinks: 0,
    signalingUp: true,
    reason: "",
    selfId: "p-me",
    self: me,
    present: [],
    rosterKnown: true,
    messages: [],
    maxMessageBytes: 65536,
    flooding: [],
    relayProblem: null,
    ...overrides,
  };
}

describe("chatState", () => {
  it("tells the reader who is flooding the room, and nothing when nobody is", () => {
    expect(chatState(facts({})).notice).toBeNull();
    expect(chatState(facts({ flooding: [{ name: "Ann", dropped: 1 }] })).notice).toBe(
      "Ann is sending too fast: 1 message dropped.",
    );
    const several = [
      { name: "Ann", dropped: 100 },
      { name: "Bob", dropped: 20 },
      { name: "Cy", dropped: 3 },
    ];
    expect(chatState(facts({ flooding: several })).notice).toBe(
      "Ann, Bob and Cy are sending too fast: 123 messages dropped.",
    );
  });

  it("says what is going on in one line", () => {
    expect(chatState(facts({ phase: "connecting", selfId: null })).status).toBe("Connecting…");
    expect(chatState(facts({ openLinks: 1 })).status).toBe("Connected to 1 peer");
    expect(chatState(facts({ openLinks: 3 })).status).toBe("Connected to 3 peers");
    const offline = chatState(facts({ phase: "offline", reason: "lost connection; retrying in 2 s" }));
    expect(offline.status).toBe("Offline — lost connection; retrying in 2 s");
    expect(offline.cannotSend).toBe(offline.status);
  });

  it("stays usable over open peer links while the server is away", () => {
    const state = chatState(facts({ phase: "offline", openLinks: 2, signalingUp: false, reason: "retrying in 4 s" }));
    expect(state.phase).toBe("online");
    expect(state.status).toBe("Connected to 2 peers — server unreachable, retrying in 4 s");
    expect(state.cannotSend).toBeNull();
  });

  it("lists us even before presence does", () => {
    const state = chatState(facts({ present: [{ peer_id: "p-b", user: { ...me, username: "b" } }] }));
    expect(state.users.map((u) => u.peer_id)).toEqual(["p-me", "p-b"]);
  });
});

describe("historyBatches", () => {
  it("keeps order and every batch under one frame", () => {
    const messages: ChatMessage[] = Array.from({ length: 500 }, (_, i) => ({
      id: `a:${i + 1}`, author: "a", seq: i + 1, clock: i + 1, time: i, text: "x".repeat(100), user: me,
    }));
    const batches = historyBatches(messages);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flat()).toEqual(messages);
    for (const batch of batches) {
      expect(JSON.stringify({ type: "history", messages: batch }).length).toBeLessThan(CHUNK_THRESHOLD_BYTES);
    }
    expect(historyBatches([])).toEqual([]);
  });

  it("names whoever failed the passphrase check, and says the room is sealed", () => {
    const sealed = chatState(facts({ sealed: true, refused: ["Bob"] }));
    expect(sealed.sealed).toBe(true);
    expect(sealed.notice).toBe(
      "Could not verify the connection with Bob: someone without this room's passphrase tried to connect (wrong passphrase?).",
    );
    expect(chatState(facts({ refused: ["Ann"] })).notice).toBe("Ann uses a room passphrase and you have none: no connection.");
    expect(chatState(facts({})).sealed).toBe(false);
  });
});

describe("Conversation", () => {
  const bob = { ...me, username: "bob", display_name: "Bob" };
  const entry = (seq: number, extra: Partial<ChatMessage> = {}): ChatMessage => ({
    id: `b:${seq}`,
    author: "b",
    seq,
    clock: seq,
    time: seq,
    text: "",
    user: bob,
    ...extra,
  });

  it("folds entries as they come (an edit before its message too), keeping unchanged rows' objects", () => {
    const conversation = new Conversation();
    const log: ChatMessage[] = [entry(2, { kind: "edit", target: "b:1", text: "fixed\nsecond line" })];
    expect(conversation.update(log)).toEqual([]);
    log.unshift(entry(1, { text: "tpyo" }));
    log.push(entry(3, { text: "answer", reply_to: "b:1" }));
    const first = conversation.update(log);
    expect(first.map((m) => [m.id, m.text, m.edited])).toEqual([
      ["b:1", "fixed\nsecond line", 2],
      ["b:3", "answer", null],
    ]);
    expect(first[1].quote).toEqual({ id: "b:1", name: "Bob", line: "fixed", deleted: false });
    // Nothing new: the same list. A reaction: only its row is new.
    expect(conversation.update(log)).toBe(first);
    log.push(entry(4, { kind: "react", target: "b:3", emoji: "👀", on: true }));
    const second = conversation.update(log);
    expect(second[0]).toBe(first[0]);
    expect(second[1]).not.toBe(first[1]);
    expect(second[1].reactions).toEqual([{ emoji: "👀", users: ["bob"] }]);
    // Deleting the original changes the reply's quote.
    log.push(entry(5, { kind: "delete", target: "b:1" }));
    const third = conversation.update(log);
    expect(third[0]).toMatchObject({ text: "", deleted: true });
    expect(third[1].quote).toEqual({ id: "b:1", name: "Bob", line: "message deleted", deleted: true });
  });
  it("an amendment at the end updates the row it names among many (found by log order), and only that row", () => {
    const conversation = new Conversation();
    const ann = { ...bob, username: "ann", display_name: "Ann" };
    // Two authors with equal clocks (ordered by author), and a switch back on the record.
    const log: ChatMessage[] = [];
    for (let seq = 1; seq <= 300; seq += 1) {
      log.push({ ...entry(seq, { text: `b${seq}` }), clock: seq });
      log.push({ ...entry(seq, { text: `a${seq}` }), id: `a:${seq}`, author: "a", user: ann, clock: seq });
    }
    log.sort((x, y) => x.clock - y.clock || (x.author < y.author ? -1 : 1));
    log.splice(100, 0, { ...entry(1000, { kind: "record", on: true }), clock: 50 });
    log.sort((x, y) => x.clock - y.clock || (x.author < y.author ? -1 : x.author > y.author ? 1 : x.seq - y.seq));
    const before = conversation.update(log);
    expect(before).toHaveLength(601);
    log.push({ ...entry(2000, { kind: "edit", target: "b:150", text: "edited" }), clock: 301 });
    log.push({ ...entry(2001, { kind: "react", target: "a:150", emoji: "👍", on: true }), clock: 302 });
    log.push({ ...entry(2002, { text: "re", reply_to: "a:7" }), clock: 303 });
    const after = conversation.update(log);
    const changed = after.flatMap((row, i) => (row !== before[i] ? [row.id] : []));
    expect(changed).toEqual(["a:150", "b:150", "b:2002"]);
    expect(after.find((m) => m.id === "b:150")?.text).toBe("edited");
    expect(after.find((m) => m.id === "a:150")?.reactions).toEqual([{ emoji: "👍", users: ["bob"] }]);
    // Editing the message a reply quotes refreshes that reply's row too.
    log.push({ ...entry(2003, { kind: "edit", target: "a:7", text: "nope" }), clock: 304, author: "a", id: "a:2003", user: ann });
    const last = conversation.update(log);
    expect(last.flatMap((row, i) => (row !== after[i] ? [row.id] : []))).toEqual(["a:7", "b:2002"]);
    expect(last[last.length - 1].quote?.line).toBe("nope");
  });
  it("a first-hand copy that replaces a relayed one shows, edited or not", () => {
    const conversation = new Conversation();
    const log: ChatMessage[] = [entry(1, { text: "forged" }), entry(2, { text: "forged too" })];
    log.push(entry(3, { kind: "edit", target: "b:2", text: "forged edit" }));
    expect(conversation.update(log).map((m) => m.text)).toEqual(["forged", "forged edit"]);
    // The log splices the relayed copies out and adds the author's own: a new array.
    const next = [entry(1, { text: "real" }), entry(2, { text: "real too" }), entry(3, { kind: "edit", target: "b:2", text: "real edit" })];
    expect(conversation.update(next).map((m) => m.text)).toEqual(["real", "real edit"]);
    expect(conversation.state("b:1")?.text).toBe("real");
  });
  it("lists the off-the-record switches, marks what they make off the record, and keeps the rest", () => {
    const conversation = new Conversation();
    const log: ChatMessage[] = [entry(1, { text: "kept" }), entry(3, { text: "between us" })];
    const before = conversation.update(log);
    expect(before.map((m) => m.off_record === true)).toEqual([false, false]);
    expect(conversation.kept(log)).toBe(log); // nothing off the record: the same array
    // The switch arrives late, ordered between the two: the second message is off the record.
    log.splice(1, 0, entry(2, { kind: "record", on: false }));
    const after = conversation.update(log);
    expect(after.map((m) => [m.id, m.kind ?? null, m.off_record === true])).toEqual([
      ["b:1", null, false],
      ["b:2", "record", false],
      ["b:3", null, true],
    ]);
    expect(after[0]).toBe(before[0]);
    expect(conversation.record()?.id).toBe("b:2");
    // A reaction to the off-the-record message is off the record too; the switch is kept.
    log.push(entry(4, { kind: "react", target: "b:3", emoji: "👍", on: true }));
    log.push(entry(5, { kind: "record", on: true }), entry(6, { text: "back" }));
    const last = conversation.update(log);
    expect(last.map((m) => m.off_record === true)).toEqual([false, false, true, false, false]);
    expect(last[2].reactions).toEqual([{ emoji: "👍", users: ["bob"] }]);
    expect(conversation.kept(log).map((m) => m.id)).toEqual(["b:1", "b:2", "b:5", "b:6"]);
  });
});
