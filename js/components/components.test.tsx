// @vitest-environment jsdom
import * as React from "react";
import { act } from "react";
import { describe, expect, it, vi } from "vitest";
import { createMarkdownRenderer } from "../markdown";
import type { ChatMessage, Identity } from "../protocol";
import type { ShownMessage } from "../chatState";
import { useChatState } from "./ChatBox";
import type { ChatState } from "../chatState";
import { ChatMessage as ChatMessageView } from "./ChatMessage";
import { ExportMenu, type HistoryPort, SearchBar, exportName, savedText, searchMessages } from "./ChatTools";
import { SaveContext } from "./FileCard";
import { LocalCopyInfo } from "./LocalCopyInfo";
import { ActionsContext, type ChatActions } from "./MessageActions";
import { MessageInput } from "./MessageInput";
import { MessagesList } from "./MessagesList";
import { UsersList } from "./UsersList";
import { testRoot } from "./testRoot";

const mounted = testRoot();
const render = mounted.render;

function user(name: string): Identity {
  return { username: name, name, display_name: name, initials: null, color: null, avatar_url: null };
}

/** Type into a controlled textarea the way React notices. */
function typeInto(textarea: HTMLTextAreaElement, value: string): void {
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value")?.set;
  act(() => {
    setter?.call(textarea, value);
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

function press(textarea: HTMLTextAreaElement, key: string, init: KeyboardEventInit = {}): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true, ...init });
  act(() => {
    textarea.dispatchEvent(event);
  });
  return event;
}

describe("MessageInput", () => {
  it("sends on Enter, keeps Shift+Enter for a new line, and hides keys from the notebook", () => {
    const onSend = vi.fn();
    const notebook = vi.fn();
    document.body.addEventListener("keydown", notebook);
    render(<MessageInput onSend={onSend} disabledReason={null} maxBytes={100} />);
    const box = mounted.container.querySelector("textarea") as HTMLTextAreaElement;
    expect(box.getAttribute("aria-label")).toBe("Message");

    typeInto(box, "line one");
    expect(press(box, "Enter", { shiftKey: true }).defaultPrevented).toBe(false);
    expect(onSend).not.toHaveBeenCalled();
    press(box, "Enter");
    expect(onSend).toHaveBeenCalledWith("line one");
    expect(box.value).toBe("");
    expect(notebook).not.toHaveBeenCalled();
    press(box, "s", { ctrlKey: true });
    expect(notebook).toHaveBeenCalledTimes(1);
    document.body.removeEventListener("keydown", notebook);
  });

  it("is disabled with the reason shown while offline", () => {
    render(<MessageInput onSend={vi.fn()} disabledReason="Offline — lost connection" maxBytes={100} />);
    expect((mounted.container.querySelector("textarea") as HTMLTextAreaElement).disabled).toBe(true);
    expect(mounted.container.textContent).toContain("Offline — lost connection");
  });

  it("refuses a message over the size limit", () => {
    const onSend = vi.fn();
    render(<MessageInput onSend={onSend} disabledReason={null} maxBytes={4} />);
    const box = mounted.container.querySelector("textarea") as HTMLTextAreaElement;
    typeInto(box, "ééé");
    press(box, "Enter");
    expect(onSend).not.toHaveBeenCalled();
    expect(mounted.container.textContent).toContain("Message too long");
  });
});

describe("UsersList", () => {
  it("lists everyone and marks you", () => {
    render(
      <UsersList
        users={[
          { peer_id: "p1", user: user("Ann") },
          { peer_id: "p2", user: user("Bob") },
        ]}
        selfId="p2"
      />,
    );
    const list = mounted.container.querySelector('[role="list"][aria-label="Users"]') as HTMLElement;
    const items = [...list.querySelectorAll("li")].map((li) => li.textContent);
    expect(items).toEqual(["ANAnn", "BOBob (you)"]);
  });

  it("shows a person connected from several places once, with the count", () => {
    const ann = user("Ann");
    render(
      <UsersList
        users={[
          { peer_id: "p1", user: ann },
          { peer_id: "p2", user: user("Bob") },
          { peer_id: "p3", user: ann },
          { peer_id: "p4", user: ann },
        ]}
        selfId="p3"
      />,
    );
    const list = mounted.container.querySelector('[role="list"][aria-label="Users"]') as HTMLElement;
    const items = [...list.querySelectorAll("li")].map((li) => li.textContent);
    expect(items).toEqual(["ANAnn (you)×3", "BOBob"]);
    expect(mounted.container.querySelector(".nbchat-users-title")?.textContent).toBe("Online — 2");
    expect(list.querySelector("li")?.getAttribute("title")).toContain("connected from 3 places");
  });
});

describe("MessagesList", () => {
  it("renders a window of a long history, not all of it (windowing without layout)", () => {
    const messages: ChatMessage[] = Array.from({ length: 10_000 }, (_, i) => ({
      id: `p:${i + 1}`,
      author: i % 2 ? "p" : "q",
      seq: i + 1,
      clock: i + 1,
      time: i * 600_000,
      text: `message ${i}`,
      user: user(i % 2 ? "Ann" : "Bob"),
    }));
    render(<MessagesList messages={messages} users={[]} selfId={null} markdown={createMarkdownRenderer(window)} />);
    const log = mounted.container.querySelector('[role="log"][aria-label="Messages"]') as HTMLElement;
    const rows = log.querySelectorAll("[data-message-id]");
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(60);
    // The window starts at the bottom, so the newest show in the first render (jsdom has no
    // layout: this is the windowing arithmetic; the browser tests check the scrolling).
    expect(log.textContent).toContain("message 9999");
    expect(log.textContent).not.toContain("message 0");
  });
});

describe("LocalCopyInfo", () => {
  it("says what this computer keeps and clears it; nothing to clear, no button to press", () => {
    const onClear = vi.fn();
    render(<LocalCopyInfo stats={{ messages: 10_000, bytes: 3_400_000 }} onClear={onClear} />);
    const group = mounted.container.querySelector('[role="group"][aria-label="Local copy"]') as HTMLElement;
    expect(group.textContent).toContain("Stored on this computer: 10,000 messages · 3.2 MB");
    const clear = group.querySelector("button") as HTMLButtonElement;
    act(() => clear.click());
    expect(onClear).toHaveBeenCalledTimes(1);
    render(<LocalCopyInfo stats={{ messages: 0, bytes: 0 }} onClear={onClear} />);
    expect((mounted.container.querySelector("button") as HTMLButtonElement).disabled).toBe(true);
    render(<LocalCopyInfo stats={null} onClear={onClear} />);
    expect(mounted.container.querySelector('[aria-label="Local copy"]')).toBeNull();
  });
});

describe("chat features (#12)", () => {
  const markdown = createMarkdownRenderer(window);
  function shown(extra: Partial<ShownMessage> = {}): ShownMessage {
    return {
      id: "b:1",
      author: "b",
      seq: 1,
      clock: 1,
      time: 1,
      text: "hi @ann, see `@ann` code",
      user: user("bob"),
      edited: null,
      deleted: false,
      reactions: [],
      quote: null,
      ...extra,
    };
  }
  function actions(self = "ann"): ChatActions & Record<string, ReturnType<typeof vi.fn>> {
    return {
      self,
      react: vi.fn(),
      reply: vi.fn(),
      edit: vi.fn(),
      remove: vi.fn(),
      jumpTo: vi.fn(),
      nameOf: (u: string) => u.toUpperCase(),
    } as unknown as ChatActions & Record<string, ReturnType<typeof vi.fn>>;
  }
  function show(message: ShownMessage, handlers: ChatActions): void {
    render(
      <ActionsContext.Provider value={handlers}>
        <ChatMessageView message={message} markdown={markdown} continued={false} isSelf={false} avatarUrl={null} />
      </ActionsContext.Provider>,
    );
  }

  it("highlights a mention of the reader (by name, not inside code) and says so", () => {
    show(shown(), actions("ann"));
    const article = mounted.container.querySelector('[role="article"]') as HTMLElement;
    expect(article.getAttribute("aria-label")).toBe("Message from bob, mentions you");
    const marks = [...mounted.container.querySelectorAll("mark.nbchat-mention-self")];
    expect(marks.map((m) => [m.textContent, m.getAttribute("title")])).toEqual([["@ANN", "@ann"]]);
    show(shown({ id: "b:2" }), actions("zed"));
    expect(mounted.container.querySelector("mark")).toBeNull();
  });

  it("shows edited, deleted, the reply's quote (jumps), and reaction chips that toggle", () => {
    const handlers = actions("ann");
    show(
      shown({
        edited: 5,
        reactions: [
          { emoji: "👍", users: ["ann", "bob"] },
          { emoji: "🎉", users: ["bob"] },
        ],
        quote: { id: "a:1", name: "ANN", line: "first line", deleted: false },
      }),
      handlers,
    );
    expect(mounted.container.textContent).toContain("(edited)");
    const quote = mounted.container.querySelector('button[aria-label^="Replying to ANN: first line"]') as HTMLButtonElement;
    act(() => quote.click());
    expect(handlers.jumpTo).toHaveBeenCalledWith("a:1");
    const chips = [...mounted.container.querySelectorAll<HTMLButtonElement>(".nbchat-reaction")];
    expect(chips.map((c) => [c.textContent, c.getAttribute("aria-pressed"), c.title])).toEqual([
      ["👍2", "true", "you and BOB reacted with 👍"],
      ["🎉1", "false", "BOB reacted with 🎉"],
    ]);
    act(() => chips[0].click());
    act(() => chips[1].click());
    expect((handlers.react as unknown as ReturnType<typeof vi.fn>).mock.calls).toEqual([
      ["b:1", "👍", false],
      ["b:1", "🎉", true],
    ]);
    show(shown({ id: "b:3", deleted: true, text: "" }), handlers);
    expect(mounted.container.querySelector(".nbchat-deleted")?.textContent).toBe("message deleted");
    expect(mounted.container.querySelector('[role="toolbar"]')).toBeNull();
  });

  it("offers react and reply on any message, edit and delete (confirmed) only on our own", () => {
    const handlers = actions("bob");
    show(shown(), handlers);
    // Made when the pointer or focus first comes (a row scrolled past makes none).
    expect(mounted.container.querySelector('[role="toolbar"]')).toBeNull();
    act(() => {
      mounted.container.querySelector('[role="article"]')?.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    });
    const toolbar = mounted.container.querySelector('[role="toolbar"]') as HTMLElement;
    const names = (): (string | null)[] => [...toolbar.querySelectorAll(":scope > button")].map((b) => b.getAttribute("aria-label"));
    expect(names()).toEqual(["React", "Reply", "Edit", "Delete"]);
    act(() => (toolbar.querySelector('[aria-label="React"]') as HTMLButtonElement).click());
    // (jsdom's selectors miss emoji in attribute values: compare the labels instead)
    const item = [...mounted.container.querySelectorAll<HTMLButtonElement>('[role="menuitemcheckbox"]')].find(
      (b) => b.getAttribute("aria-label") === "React with 🎉",
    ) as HTMLButtonElement;
    act(() => item.click());
    expect(handlers.react).toHaveBeenCalledWith("b:1", "🎉", true);
    act(() => (toolbar.querySelector('[aria-label="Delete"]') as HTMLButtonElement).click());
    expect(handlers.remove).not.toHaveBeenCalled();
    act(() => (toolbar.querySelector('[aria-label="Confirm delete"]') as HTMLButtonElement).click());
    expect(handlers.remove).toHaveBeenCalledWith("b:1");
    show(shown({ id: "b:4" }), actions("ann"));
    act(() => (mounted.container.querySelector('[role="article"]') as HTMLElement).focus());
    const other = mounted.container.querySelector('[role="toolbar"]') as HTMLElement;
    expect([...other.querySelectorAll(":scope > button")].map((b) => b.getAttribute("aria-label"))).toEqual(["React", "Reply"]);
  });

  it("edits in the message box: ArrowUp when empty, Enter saves, Escape cancels and restores the draft", () => {
    const onEdit = vi.fn();
    const onEditLast = vi.fn();
    const onCancelEdit = vi.fn();
    const props = { onSend: vi.fn(), disabledReason: null, maxBytes: 100, onEdit, onEditLast, onCancelEdit };
    render(<MessageInput {...props} />);
    const box = mounted.container.querySelector("textarea") as HTMLTextAreaElement;
    press(box, "ArrowUp");
    expect(onEditLast).toHaveBeenCalledTimes(1);
    render(<MessageInput {...props} editing={{ id: "a:1", text: "old text" }} />);
    expect(box.value).toBe("old text");
    // Focus and caret at the end in the same commit: a key typed right away goes after the text.
    expect(document.activeElement).toBe(box);
    expect([box.selectionStart, box.selectionEnd]).toEqual([8, 8]);
    expect(mounted.container.querySelector(".nbchat-input-send")?.textContent).toBe("Save");
    typeInto(box, "new text");
    press(box, "Enter");
    expect(onEdit).toHaveBeenCalledWith("a:1", "new text");
    render(<MessageInput {...props} editing={{ id: "a:2", text: "again" }} />);
    expect(box.value).toBe("again");
    press(box, "Escape");
    expect(onCancelEdit).toHaveBeenCalled();
  });

  it("autocompletes @ from the room's people with the keyboard and the mouse, and reports typing", () => {
    const onTyping = vi.fn();
    const people = [user("ana"), user("andy"), user("bob")];
    render(<MessageInput onSend={vi.fn()} disabledReason={null} maxBytes={100} people={people} onTyping={onTyping} />);
    const box = mounted.container.querySelector("textarea") as HTMLTextAreaElement;
    typeInto(box, "hi @an");
    expect(onTyping).toHaveBeenLastCalledWith(true);
    const options = (): string[] => [...mounted.container.querySelectorAll('[role="option"]')].map((o) => o.textContent ?? "");
    expect(options()).toEqual(["ana@ana", "andy@andy"]);
    expect(box.getAttribute("aria-activedescendant")).toMatch(/-0$/);
    press(box, "ArrowDown");
    press(box, "Tab");
    expect(box.value).toBe("hi @andy ");
    expect(options()).toEqual([]);
    typeInto(box, "hi @andy and @b");
    const bob = mounted.container.querySelector('[role="option"]') as HTMLElement;
    act(() => {
      bob.dispatchEvent(new MouseEvent("mousedown", { bubbles: true, cancelable: true }));
    });
    expect(box.value).toBe("hi @andy and @bob ");
    typeInto(box, "");
    expect(onTyping).toHaveBeenLastCalledWith(false);
  });

  it("puts the caret after a completed mention in the same commit (a key typed right after lands there)", () => {
    const people = [user("ana"), user("bob")];
    render(<MessageInput onSend={vi.fn()} disabledReason={null} maxBytes={100} people={people} />);
    const box = mounted.container.querySelector("textarea") as HTMLTextAreaElement;
    const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value")?.set;
    act(() => {
      setter?.call(box, "hi @an and more");
      box.setSelectionRange(6, 6);
      box.dispatchEvent(new Event("input", { bubbles: true }));
    });
    press(box, "Tab");
    expect(box.value).toBe("hi @ana  and more");
    // No animation frame has run: the caret is already after "@ana ".
    expect([box.selectionStart, box.selectionEnd]).toEqual([8, 8]);
  });
});

describe("search and export", () => {
  const listed = (id: string, text: string, deleted = false) =>
    ({ id, author: "a", seq: 1, clock: 1, time: 1, text, user: user("ann"), deleted }) as ChatMessage & { deleted: boolean };

  it("finds messages by text (ignoring case, never deleted ones) in 10,000 quickly", () => {
    const messages = Array.from({ length: 10_000 }, (_, i) => listed(`a:${i + 1}`, `message ${i}${i % 1000 === 7 ? " Harbour" : ""}`));
    messages.push(listed("a:10001", "harbour, deleted", true));
    const started = performance.now();
    const found = searchMessages(messages, "  harBOUR ");
    expect(performance.now() - started).toBeLessThan(200);
    expect(found).toHaveLength(10);
    expect(found[0]).toBe("a:8");
    expect(searchMessages(messages, " ")).toEqual([]);
  });

  it("jumps to the newest match, then older with Enter and newer with Shift+Enter; Escape closes", () => {
    const onJump = vi.fn();
    const onClose = vi.fn();
    render(<SearchBar query="x" onQuery={vi.fn()} matches={["a:1", "a:5", "a:9"]} onJump={onJump} onClose={onClose} />);
    const box = mounted.container.querySelector('input[aria-label="Search messages"]') as HTMLInputElement;
    expect(onJump).toHaveBeenLastCalledWith("a:9");
    expect(mounted.container.querySelector('[aria-label="Search results"]')?.textContent).toBe("1 of 3");
    press(box as unknown as HTMLTextAreaElement, "Enter");
    expect(onJump).toHaveBeenLastCalledWith("a:5");
    press(box as unknown as HTMLTextAreaElement, "Enter", { shiftKey: true });
    expect(onJump).toHaveBeenLastCalledWith("a:9");
    press(box as unknown as HTMLTextAreaElement, "Escape");
    expect(onClose).toHaveBeenCalled();
  });

  it("names export files after the room", () => {
    expect(exportName("notebooks/My Analysis.ipynb", "md")).toBe("notebooks-My-Analysis-chat.md");
    expect(exportName("///", "json")).toBe("nbchat-chat.json");
  });

  const history = (imported: HistoryPort["importHistory"] = vi.fn()): HistoryPort => ({
    exportDocument: () => ({ format: "nbchat-export/1", room: "nb.ipynb", exported: 1, entries: [{ id: "a:1" }], certs: [] }),
    importHistory: imported,
  });
  const menuItems = (): string[] => [...mounted.container.querySelectorAll("[role=menuitem]")].map((b) => b.textContent ?? "");
  const openMenu = (): void => act(() => (mounted.container.querySelector('[aria-label="Export the history"]') as HTMLElement).click());
  const item = (name: string): HTMLElement => [...mounted.container.querySelectorAll<HTMLElement>("[role=menuitem]")].find((b) => b.textContent === name) as HTMLElement;
  const status = (): string => mounted.container.querySelector('[role=status][aria-label="History file"]')?.textContent ?? "";

  it("saves Markdown and JSON next to the notebook through the kernel, and says where they went", async () => {
    const save = vi.fn(async (name: string, _bytes: Uint8Array) => (name.endsWith(".json") ? "nb-chat (1).json" : name));
    render(
      <SaveContext.Provider value={save}>
        <ExportMenu room="nb.ipynb" messages={[listed("a:1", "hello **there**")]} history={history()} />
      </SaveContext.Provider>,
    );
    openMenu();
    expect(menuItems()).toEqual([
      "Download Markdown (.md)",
      "Download JSON (.json, re-importable)",
      "Save Markdown next to the notebook",
      "Save JSON next to the notebook",
      "Import JSON…",
    ]);
    await act(async () => item("Save Markdown next to the notebook").click());
    expect(save.mock.calls[0][0]).toBe("nb-chat.md");
    expect(new TextDecoder().decode(save.mock.calls[0][1] as Uint8Array)).toContain("hello **there**");
    expect(status()).toContain("Saved nb-chat.md next to the notebook.");
    openMenu();
    await act(async () => item("Save JSON next to the notebook").click());
    expect(JSON.parse(new TextDecoder().decode(save.mock.calls[1][1] as Uint8Array)).entries).toEqual([{ id: "a:1" }]);
    expect(status()).toContain("Saved as nb-chat (1).json next to the notebook (nb-chat.json was taken).");
    save.mockRejectedValueOnce(new Error("disk full"));
    openMenu();
    await act(async () => item("Save JSON next to the notebook").click());
    expect(status()).toContain("Not saved: disk full");
  });

  it("offers saving only when a kernel can save; menu items move with the arrow keys", () => {
    render(<ExportMenu room="nb.ipynb" messages={[]} history={history()} />);
    openMenu();
    expect(menuItems()).toEqual(["Download Markdown (.md)", "Download JSON (.json, re-importable)", "Import JSON…"]);
    expect(document.activeElement?.textContent).toBe("Download Markdown (.md)");
    const menu = mounted.container.querySelector("[role=menu]") as HTMLElement;
    act(() => {
      menu.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    });
    expect(document.activeElement?.textContent).toBe("Import JSON…");
    expect(savedText("a.md", "a.md")).toBe("Saved a.md next to the notebook.");
  });

  it("imports a picked file and shows what it did, or why not", async () => {
    const imported = vi.fn(async (text: string) => {
      if (!text.startsWith("{")) throw new Error("Not imported: the file is not JSON.");
      return { messages: 2, amendments: 0, held: 1, unverified: 1, invalid: 0 };
    });
    render(<ExportMenu room="nb.ipynb" messages={[]} history={history(imported)} />);
    const picker = mounted.container.querySelector('input[type=file]') as HTMLInputElement;
    const clicked = vi.spyOn(picker, "click").mockImplementation(() => undefined);
    openMenu();
    act(() => item("Import JSON…").click());
    expect(clicked).toHaveBeenCalled();
    const pick = async (file: File): Promise<void> => {
      Object.defineProperty(picker, "files", { value: [file], configurable: true });
      await act(async () => {
        picker.dispatchEvent(new Event("change", { bubbles: true }));
      });
      await act(async () => new Promise((resolve) => setTimeout(resolve, 0)));
    };
    await pick(new File(['{"format": "nbchat-export/1"}'], "nb-chat.json"));
    expect(imported).toHaveBeenCalledWith('{"format": "nbchat-export/1"}');
    expect(status()).toContain("Imported 2 messages. 1 already here. 1 entry left out: signature not verified");
    await pick(new File(["# nb"], "nb-chat.md"));
    expect(status()).toContain("Not imported: the file is not JSON.");
    expect(mounted.container.querySelector(".nbchat-export-failed")).not.toBeNull();
  });
});

describe("mention notifications", () => {
  it("asks only on the bell's click, then notifies of mentions while the tab is hidden", async () => {
    const { useMentionNotifications } = await import("./notify");
    const shown: { title: string; body: string }[] = [];
    const asked = vi.fn(async () => {
      FakeNotification.permission = "granted";
      return "granted";
    });
    class FakeNotification {
      static permission = "default";
      static requestPermission = asked;
      onclick: (() => void) | null = null;
      constructor(title: string, options: { body: string }) {
        shown.push({ title, body: options.body });
      }
      close(): void {}
    }
    vi.stubGlobal("Notification", FakeNotification);
    let bell: { toggle(): void; enabled: boolean } = { toggle: () => {}, enabled: false };
    const message = (id: string, text: string): ChatMessage => ({ id, author: "b", seq: 1, clock: 1, time: 1, text, user: user("bob") });
    function Harness({ messages }: { messages: ChatMessage[] }): null {
      bell = useMentionNotifications(messages, "me-1", "ann", () => {});
      return null;
    }
    render(<Harness messages={[message("b:1", "hi")]} />);
    expect(asked).not.toHaveBeenCalled(); // never on load
    await act(async () => bell.toggle());
    expect(asked).toHaveBeenCalledTimes(1);
    expect(bell.enabled).toBe(true);
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    render(<Harness messages={[message("b:1", "hi"), message("b:2", "@ann look"), message("b:3", "no mention")]} />);
    expect(shown).toEqual([{ title: "bob mentioned you", body: "@ann look" }]);
    // Visible tab: no notification.
    delete (document as { visibilityState?: string }).visibilityState;
    render(<Harness messages={[message("b:1", "hi"), message("b:2", "@ann look"), message("b:3", "no"), message("b:4", "@ann again")]} />);
    expect(shown).toHaveLength(1);
    vi.unstubAllGlobals();
  });
});

describe("useChatState", () => {
  it("renders a change of the proxy's state before the proxy's emit returns (no task, no microtask)", () => {
    const listeners: ((state: ChatState) => void)[] = [];
    let state = { phase: "ready", messages: [] } as unknown as ChatState;
    const proxy = {
      get state(): ChatState {
        return state;
      },
      subscribe(next: (state: ChatState) => void): () => void {
        listeners.push(next);
        next(state);
        return () => listeners.splice(listeners.indexOf(next), 1);
      },
    };
    function Shown(): React.ReactElement {
      const shown = useChatState(proxy);
      return <p>{shown.messages.length} messages</p>;
    }
    render(<Shown />);
    expect(mounted.container.textContent).toBe("0 messages");
    // As ChatProxy's emit does: outside React, from a microtask or an animation frame.
    const actEnvironment = (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT;
    (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;
    try {
      state = { ...state, messages: [{ id: "a" }] } as unknown as ChatState;
      for (const listener of listeners) listener(state);
      expect(mounted.container.textContent).toBe("1 messages");
    } finally {
      (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = actEnvironment;
    }
  });
});
