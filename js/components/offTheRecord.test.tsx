// @vitest-environment jsdom
// The off-the-record switch, banner and log line (js/components/OffTheRecord.tsx).
import * as React from "react";
import { act } from "react";
import { describe, expect, it, vi } from "vitest";
import { createMarkdownRenderer } from "../markdown";
import type { ChatMessage } from "../protocol";
import { ChatMessage as ChatMessageView } from "./ChatMessage";
import { OffRecordBanner, OffRecordToggle } from "./OffTheRecord";
import { testRoot } from "./testRoot";

const mounted = testRoot();
const render = mounted.render;

const ana = { username: "ana", name: "ana", display_name: "Ana", initials: null, color: null, avatar_url: null };
const entry = (extra: Partial<ChatMessage>): ChatMessage => ({
  id: "a:1",
  author: "a",
  seq: 1,
  clock: 1,
  time: 0,
  text: "",
  user: ana,
  ...extra,
});

describe("off the record", () => {
  it("the switch is a pressed button while the room is off, and asks for the other state", () => {
    const onToggle = vi.fn();
    render(<OffRecordToggle offRecord={null} disabled={false} onToggle={onToggle} />);
    const button = mounted.container.querySelector("button") as HTMLButtonElement;
    expect(button.getAttribute("aria-label")).toBe("Off the record");
    expect(button.getAttribute("aria-pressed")).toBe("false");
    act(() => button.click());
    expect(onToggle).toHaveBeenLastCalledWith(true);
    render(<OffRecordToggle offRecord={{ by: "Ana", since: 0 }} disabled={false} onToggle={onToggle} />);
    expect(button.getAttribute("aria-pressed")).toBe("true");
    act(() => button.click());
    expect(onToggle).toHaveBeenLastCalledWith(false);
  });

  it("the banner shows only while off, saying who switched", () => {
    render(<OffRecordBanner offRecord={null} />);
    expect(mounted.container.textContent).toBe("");
    render(<OffRecordBanner offRecord={{ by: "Ana", since: 0 }} />);
    const banner = mounted.container.querySelector('[role="status"]') as HTMLElement;
    expect(banner.getAttribute("aria-label")).toBe("Off the record");
    expect(banner.textContent).toContain("Ana turned it off");
  });

  it("a switch is a line in the log, and an off-record message is marked", () => {
    const markdown = createMarkdownRenderer(window);
    const props = { markdown, continued: false, isSelf: false, avatarUrl: null };
    render(<ChatMessageView message={entry({ kind: "record", on: false })} {...props} />);
    expect(mounted.container.querySelector('[role="article"]')?.getAttribute("aria-label")).toBe(
      "Ana took the chat off the record",
    );
    render(<ChatMessageView message={entry({ id: "a:2", kind: "record", on: true })} {...props} />);
    expect(mounted.container.textContent).toContain("Ana put the chat back on the record");
    render(<ChatMessageView message={entry({ id: "a:3", text: "between us", off_record: true })} {...props} />);
    const article = mounted.container.querySelector('[role="article"]') as HTMLElement;
    expect(article.getAttribute("aria-label")).toBe("Message from Ana, off the record");
    expect(article.textContent).toContain("off the record");
  });
  it("a mention said off the record notifies without its text (the system keeps notifications)", async () => {
    const { useMentionNotifications } = await import("./notify");
    const shown: string[] = [];
    class FakeNotification {
      static permission = "granted";
      static requestPermission = async () => "granted";
      onclick: (() => void) | null = null;
      constructor(_title: string, options: { body: string }) {
        shown.push(options.body);
      }
      close(): void {}
    }
    vi.stubGlobal("Notification", FakeNotification);
    let bell: { toggle(): void } = { toggle: () => {} };
    function Harness({ messages }: { messages: ChatMessage[] }): null {
      bell = useMentionNotifications(messages, "me-1", "zoe", () => {});
      return null;
    }
    render(<Harness messages={[entry({ text: "hi" })]} />);
    await act(async () => bell.toggle());
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    render(<Harness messages={[entry({ text: "hi" }), entry({ id: "a:2", text: "@zoe the secret is 42", off_record: true })]} />);
    delete (document as { visibilityState?: string }).visibilityState;
    vi.unstubAllGlobals();
    expect(shown).toEqual(["Off the record: open the chat to read it"]);
  });
});
