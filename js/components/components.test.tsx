// @vitest-environment jsdom
import * as React from "react";
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createMarkdownRenderer } from "../markdown";
import type { ChatMessage, Identity } from "../protocol";
import { LocalCopyInfo } from "./LocalCopyInfo";
import { MessageInput } from "./MessageInput";
import { MessagesList } from "./MessagesList";
import { UsersList } from "./UsersList";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

function render(element: React.ReactElement): void {
  act(() => root.render(element));
}

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
    const box = container.querySelector("textarea") as HTMLTextAreaElement;
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
    expect((container.querySelector("textarea") as HTMLTextAreaElement).disabled).toBe(true);
    expect(container.textContent).toContain("Offline — lost connection");
  });

  it("refuses a message over the size limit", () => {
    const onSend = vi.fn();
    render(<MessageInput onSend={onSend} disabledReason={null} maxBytes={4} />);
    const box = container.querySelector("textarea") as HTMLTextAreaElement;
    typeInto(box, "ééé");
    press(box, "Enter");
    expect(onSend).not.toHaveBeenCalled();
    expect(container.textContent).toContain("Message too long");
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
    const list = container.querySelector('[role="list"][aria-label="Users"]') as HTMLElement;
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
    const list = container.querySelector('[role="list"][aria-label="Users"]') as HTMLElement;
    const items = [...list.querySelectorAll("li")].map((li) => li.textContent);
    expect(items).toEqual(["ANAnn (you)×3", "BOBob"]);
    expect(container.querySelector(".nbchat-users-title")?.textContent).toBe("Online — 2");
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
    const log = container.querySelector('[role="log"][aria-label="Messages"]') as HTMLElement;
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
    const group = container.querySelector('[role="group"][aria-label="Local copy"]') as HTMLElement;
    expect(group.textContent).toContain("Stored on this computer: 10,000 messages · 3.2 MB");
    const clear = group.querySelector("button") as HTMLButtonElement;
    act(() => clear.click());
    expect(onClear).toHaveBeenCalledTimes(1);
    render(<LocalCopyInfo stats={{ messages: 0, bytes: 0 }} onClear={onClear} />);
    expect((container.querySelector("button") as HTMLButtonElement).disabled).toBe(true);
    render(<LocalCopyInfo stats={null} onClear={onClear} />);
    expect(container.querySelector('[aria-label="Local copy"]')).toBeNull();
  });
});
