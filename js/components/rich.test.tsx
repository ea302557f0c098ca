// @vitest-environment jsdom
// Rich messages as a user sees them, and hostile rich payloads: an HTML table carrying scripts,
// SVG with <script>/onload, polyglot images, oversized bundles. What is rendered must be inert.
import * as React from "react";
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MessageLog } from "../core/msglog";
import { MAX_RICH_BYTES, cleanMime } from "../core/rich";
import { createMarkdownRenderer } from "../markdown";
import type { ChatMessage, Identity } from "../protocol";
import { RichBody } from "./RichBody";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;
const made: string[] = [];

beforeEach(() => {
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  // jsdom has no blob URLs: count what the component makes and revokes.
  let n = 0;
  URL.createObjectURL = () => {
    const url = `blob:nbchat-test/${++n}`;
    made.push(url);
    return url;
  };
  URL.revokeObjectURL = (url: string) => {
    made.splice(made.indexOf(url), 1);
  };
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

const markdown = createMarkdownRenderer(window as Window & typeof globalThis);
const bob: Identity = { username: "bob", name: "bob", display_name: "Bob", initials: null, color: null, avatar_url: null };
const PNG = btoa("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + "\x00".repeat(20));

/** A bundle as a receiver's log keeps it (core/rich), rendered. */
function show(mime: Record<string, unknown>, text = "fallback"): HTMLElement {
  const log = new MessageLog("S", { ...bob, username: "self" });
  const message = log.receiveDirect("B", bob, { seq: 1, clock: 1, time: 1, text, user: bob, mime }) as ChatMessage;
  act(() =>
    root.render(
      message.mime !== undefined ? (
        <RichBody mime={message.mime} text={message.text} markdown={markdown} />
      ) : (
        <div dangerouslySetInnerHTML={{ __html: markdown.render(message.text) }} />
      ),
    ),
  );
  return container;
}

describe("rich message bodies", () => {
  it("a DataFrame's HTML table survives with its cells; its scripts, styles and handlers do not", () => {
    const html =
      '<div><style scoped>.dataframe { position: fixed }</style><table border="1" class="dataframe jp-Dialog">' +
      '<thead><tr><th></th><th onclick="alert(1)">city</th></tr></thead>' +
      '<tbody><tr><th>0</th><td style="background:url(https://evil.example/x.png)">Oslo</td></tr>' +
      '<tr><th>1</th><td><img src="https://evil.example/track.png" onerror="alert(2)">Lima</td></tr></tbody></table>' +
      '<script>alert(3)</script><iframe src="https://evil.example"></iframe><a href="javascript:alert(4)">x</a>' +
      '<svg onload="alert(5)"></svg><form action="https://evil.example"><input></form><link rel="stylesheet" href="https://evil.example/s.css"></div>';
    const page = show({ "text/html": html, "text/plain": "  city\n0 Oslo" });
    const cells = [...page.querySelectorAll("table td")].map((td) => td.textContent);
    expect(cells).toEqual(["Oslo", "Lima"]);
    expect(page.querySelector("th:nth-child(2)")?.textContent).toBe("city");
    const markup = (page.querySelector(".nbchat-rich-html") as HTMLElement).innerHTML;
    for (const banned of ["<script", "<style", "<img", "<iframe", "<svg", "<form", "<input", "<link", "onclick", "onerror", "onload", "javascript:", "evil.example", "class=", "style="]) {
      expect(markup).not.toContain(banned);
    }
  });

  it("an image is shown from a blob URL made here, with its text as alt", () => {
    const page = show({ "image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>" });
    const img = page.querySelector("img") as HTMLImageElement;
    expect(img.getAttribute("src")).toMatch(/^blob:/);
    expect(img.alt).toBe("<Figure size 640x480 with 1 Axes>");
    act(() => root.render(<div />));
    expect(made).toEqual([]); // revoked once the message is no longer shown
  });

  it("an SVG with <script> and onload is only ever an <img> (which runs no script and loads nothing)", () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>' +
      '<image href="https://evil.example/x.png"/><foreignObject><iframe src="https://evil.example"/></foreignObject></svg>';
    const page = show({ "image/svg+xml": svg });
    expect(page.querySelectorAll("svg, script, iframe, image, foreignObject")).toHaveLength(0);
    const img = page.querySelector("img") as HTMLImageElement;
    expect(img.getAttribute("src")).toMatch(/^blob:/);
    expect(img.dataset.mime).toBe("image/svg+xml");
  });

  it("a polyglot (HTML labelled image/png) is not shown as an image nor as HTML: the text is", () => {
    const page = show({ "image/png": btoa("<html><script>alert(1)</script></html>") }, "plain **fallback**");
    expect(page.querySelector("img, script")).toBeNull();
    expect(page.querySelector("strong")?.textContent).toBe("fallback");
  });

  it("LaTeX and JSON are shown as source, escaped", () => {
    let page = show({ "text/latex": "$\\frac{a}{b}$ <script>alert(1)</script>" });
    expect(page.querySelector("figcaption")?.textContent).toBe("LaTeX");
    expect(page.querySelector("pre code")?.textContent).toBe("$\\frac{a}{b}$ <script>alert(1)</script>");
    expect(page.querySelector("script")).toBeNull();
    page = show({ "application/json": '{"a":[1,2]}' });
    expect(page.querySelector("pre code")?.textContent).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
  });

  it("an oversized bundle is dropped by the log; the message's text stays", () => {
    const huge = { "text/html": `<table><tr><td>${"x".repeat(MAX_RICH_BYTES)}</td></tr></table>` };
    expect(cleanMime(huge)).toBeNull();
    const page = show(huge, "the text survives");
    expect(page.textContent?.trim()).toBe("the text survives");
    expect(page.querySelector("table")).toBeNull();
  });
});

describe("code blocks", () => {
  it("are highlighted locally, stay inert, and copy their code with the Copy button", async () => {
    const { ChatMessage } = await import("./ChatMessage");
    const written: string[] = [];
    Object.defineProperty(navigator, "clipboard", {
      value: { writeText: (text: string) => (written.push(text), Promise.resolve()) },
      configurable: true,
    });
    const code = 'def mean(xs):\n    return sum(xs) / len(xs)  # "<script>alert(1)</script>"';
    const message: ChatMessage = { id: "B:1", author: "B", seq: 1, clock: 1, time: 1, user: bob, text: "```python\n" + code + "\n```" };
    act(() => root.render(<ChatMessage message={message} markdown={markdown} continued={false} isSelf={false} avatarUrl={null} />));
    expect(container.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(container.querySelector(".hljs-comment")?.textContent).toContain("<script>");
    expect(container.querySelector("pre script")).toBeNull();
    const copy = container.querySelector("button.nbchat-copy") as HTMLButtonElement;
    expect(copy.getAttribute("aria-label")).toBe("Copy code");
    await act(async () => copy.click());
    expect(written).toEqual([code]);
    // An unknown language is shown plain, escaped.
    const plain: ChatMessage = { ...message, id: "B:2", text: "```brainfuck\n<b>++</b>\n```" };
    act(() => root.render(<ChatMessage message={plain} markdown={markdown} continued={false} isSelf={false} avatarUrl={null} />));
    expect(container.querySelector("pre code")?.textContent).toBe("<b>++</b>");
    expect(container.querySelector("pre b, .hljs-keyword")).toBeNull();
  });
});

describe("sharing files from the message box", () => {
  it("a pasted image and a chosen file go to onFiles; pasted text stays text", async () => {
    const { MessageInput } = await import("./MessageInput");
    const shared: string[] = [];
    act(() =>
      root.render(<MessageInput onSend={() => undefined} onFiles={(files) => shared.push(...files.map((f) => f.name))} disabledReason={null} maxBytes={100} />),
    );
    const box = container.querySelector("textarea") as HTMLTextAreaElement;
    const pasteWith = (files: File[]): Event => {
      const event = new Event("paste", { bubbles: true, cancelable: true });
      Object.defineProperty(event, "clipboardData", { value: { files, getData: () => "" } });
      act(() => {
        box.dispatchEvent(event);
      });
      return event;
    };
    expect(pasteWith([new File(["png"], "image.png", { type: "image/png" })]).defaultPrevented).toBe(true);
    expect(pasteWith([]).defaultPrevented).toBe(false); // plain text paste is the browser's
    const picker = container.querySelector('input[type="file"]') as HTMLInputElement;
    Object.defineProperty(picker, "files", { value: [new File(["a,b"], "data.csv")], configurable: true });
    act(() => {
      picker.dispatchEvent(new Event("change", { bubbles: true }));
    });
    expect(shared).toEqual(["image.png", "data.csv"]);
    expect(container.querySelector('button[aria-label="Attach a file"]')).not.toBeNull();
  });
});
