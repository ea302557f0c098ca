// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { type MarkdownRenderer, createMarkdownRenderer, inlineOnly, plainHtml, tameInline } from "./markdown";

const md = createMarkdownRenderer(window);

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("markdown rendering", () => {
  it("renders ordinary Markdown", () => {
    const out = dom(md.render("**bold** and `code`\n\n- a\n- b"));
    expect(out.querySelector("strong")?.textContent).toBe("bold");
    expect(out.querySelector("code")?.textContent).toBe("code");
    expect(out.querySelectorAll("li").length).toBe(2);
  });

  it.each([
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<iframe src='https://evil.example'></iframe>",
    "<svg onload=alert(1)><circle/></svg>",
    "<math><mi>x</mi></math>",
    "<form action='https://evil.example'><input name=a></form>",
    "<style>body{display:none}</style>",
    "![tracker](https://evil.example/pixel.png)",
    "<div onclick='alert(1)' style='position:fixed'>x</div>",
    "<a href='javascript:alert(1)'>click</a>",
    "[click](javascript:alert(1))",
    "<a href='data:text/html,<script>alert(1)</script>'>d</a>",
  ])("leaves nothing active in %s", (text) => {
    const out = dom(md.render(text));
    expect(out.querySelector("img, script, iframe, svg, math, form, input, style")).toBeNull();
    for (const element of out.querySelectorAll("*")) {
      for (const attribute of element.getAttributeNames()) {
        expect(attribute.startsWith("on")).toBe(false);
        expect(attribute).not.toBe("style");
      }
      const href = element.getAttribute("href");
      if (href !== null) expect(href).toMatch(/^(https?:|mailto:)/);
    }
  });

  it.each(["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "hi <b onclick=x>there</b>"])(
    "shows raw HTML %s as inert text",
    (text) => {
      const out = dom(md.render(text));
      expect(out.textContent?.trim()).toBe(text);
      expect(out.querySelector("img, script, b")).toBeNull();
    },
  );

  it("keeps web and mail links, opening safely in a new tab", () => {
    const out = dom(md.render("[docs](https://jupyter.org) <mailto:a@b.org> [rel](../x)"));
    const links = [...out.querySelectorAll("a")];
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://jupyter.org", "mailto:a@b.org", null]);
    for (const a of links) {
      expect(a.getAttribute("rel")).toBe("noopener noreferrer");
      expect(a.getAttribute("target")).toBe("_blank");
    }
  });

  it("never loads an image: it shows as a link with its description, or a placeholder", () => {
    const out = dom(md.render("![chart](https://example.org/c.png) ![](http://198.51.100.7/t.png) ![x](javascript:alert(1))"));
    expect(out.querySelector("img")).toBeNull();
    const links = [...out.querySelectorAll("a")];
    expect(links.map((a) => [a.textContent, a.getAttribute("href")])).toEqual([
      ["[image: chart]", "https://example.org/c.png"],
      ["[image: no description]", "http://198.51.100.7/t.png"],
      ["[image: x]", null],
    ]);
    for (const a of links) expect(a.getAttribute("rel")).toBe("noopener noreferrer");
  });

  it("shows a message marked cannot parse (nesting deep enough to overflow its stack) as plain text", () => {
    const text = `${">".repeat(60_000)} <img src=x onerror=alert(1)>\nsecond line`;
    let html = "";
    expect(() => {
      html = md.render(text);
    }).not.toThrow();
    const out = dom(html);
    expect(out.querySelector("img")).toBeNull();
    expect(out.textContent).toContain("<img src=x onerror=alert(1)>");
    expect(out.querySelectorAll("br").length).toBe(1);
  });

  it("shows a long message of emphasis marks (quadratic for marked) as plain text, quickly", () => {
    const text = "_a".repeat(30_000);
    const started = performance.now();
    const out = dom(md.render(text));
    expect(performance.now() - started).toBeLessThan(1_000); // ~10 s through marked
    expect(out.textContent).toBe(text);
    // Ordinary long messages keep their Markdown.
    const long = `**${"word ".repeat(3_000).trim()}**`;
    expect(dom(md.render(long)).querySelector("strong")).not.toBeNull();
  });

  it("shows escaped HTML in code as text", () => {
    const out = dom(md.render("`<img src=x onerror=alert(1)>`"));
    expect(out.textContent).toContain("<img src=x onerror=alert(1)>");
    expect(out.querySelector("img")).toBeNull();
  });
});

/** `count` strings of 1 to `most` of `pieces`, the same ones for the same `seed`. */
function* randomTexts(pieces: readonly string[], seed: number, most: number, count: number): Generator<string> {
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < count; i += 1) {
    let text = "";
    for (let k = 1 + next(most); k > 0; k -= 1) text += pieces[next(pieces.length)];
    yield text;
  }
}

/** How many of `texts` a fast path takes (`fast` gives its HTML, or null), each checked to be
 *  exactly what marked + DOMPurify (`slow`) give. */
function checkedWhereTaken(texts: Iterable<string>, fast: (text: string) => string | null, slow: MarkdownRenderer): number {
  let taken = 0;
  for (const text of texts) {
    const html = fast(text);
    if (html === null) continue;
    taken += 1;
    expect([text, html]).toEqual([text, slow.render(text)]);
  }
  return taken;
}

describe("the plain-text fast path", () => {
  const slow = createMarkdownRenderer(window, { fastPath: false });

  it.each([
    "bench-12",
    "hello there",
    "Can you look at cell 3?",
    "ok! (see above); it's \"fine\" - really.",
    "line one\nline two",
    "déjà vu, 中文, ünïcödé, 42",
    "naïve café\nsecond, third\n(a) b",
  ])("takes %j, with the same HTML as marked + DOMPurify", (text) => {
    expect(plainHtml(text)).not.toBeNull();
    expect(plainHtml(text)).toBe(slow.render(text));
    expect(md.render(text)).toBe(slow.render(text));
  });

  it.each([
    "- a list",
    "1. a list",
    "2) a list",
    "---",
    "title\n---",
    "    indented code",
    " leading space",
    "trailing space ",
    "para\n\npara",
    "www.example.com",
    "see https://example.com",
    "a@b.example",
    "**bold**",
    "<b>x</b>",
    "a & b",
    "#hash",
    "`code`",
    "~~gone~~",
    "a | b",
    "back\\slash",
  ])("leaves %j to marked", (text) => {
    expect(plainHtml(text)).toBeNull();
  });

  it("gives exactly what marked + DOMPurify give, on 5,000 random strings of tricky pieces", () => {
    const pieces = [
      "a", "B", "é", "中", "1", "9", "0.", "1)", " ", "  ", ",", ".", "?", "!", "'", '"', "(", ")",
      ";", "-", "--", "\n", "\n\n", " \n", "www.", "wWw.", "x", "ok", "e\u0301", "٣",
    ];
    const taken = checkedWhereTaken(randomTexts(pieces, 13, 12, 5_000), plainHtml, slow);
    expect(taken).toBeGreaterThan(500); // the property was tried on plenty of plain strings
  });
});

describe("the one-line path (marked's inline parser alone)", () => {
  const slow = createMarkdownRenderer(window, { fastPath: false });
  const fast = createMarkdownRenderer(window);

  it.each([
    "history 000123 with some *markdown* in it, about as long as a chat line",
    "see **this** and `that` and ~~not~~ this",
    "a [link](https://example.com) and https://example.org/x?y=1 and www.example.com",
    "mail a@b.example or <https://example.com>",
    "an ![image](https://example.com/x.png) stays a link",
    "x <img src=x onerror=alert(1)> y",
    "x <b>bold?</b> &amp; &#60; &lt;",
    "tricky * not emphasis * and _under_score_ and \\*escaped\\*",
    "a | b | c",
    "ends with a backslash\\",
    "ünïcödé *é* 中文 `代码`",
  ])("takes %j, with the same HTML as marked + DOMPurify", (text) => {
    expect(inlineOnly(text)).toBe(true);
    expect(fast.render(text)).toBe(slow.render(text));
  });

  it.each([
    "# heading", "> quote", "- item", "* item", "+ item", "1. item", "2) item", "***", "___", "===",
    "```js", "~~~", "<div>x</div>", "[a]: https://example.com", "| a |", ": x", " lead", "trail ",
    "two\nlines", "tab\there", "cr\rhere", "",
  ])("leaves %j to the whole parser", (text) => {
    expect(inlineOnly(text)).toBe(false);
  });

  it("gives exactly what marked + DOMPurify give, on 5,000 random one-line strings of tricky pieces", () => {
    const pieces = [
      "a", "B", "é", "中", "1", "9", "0.", "1)", " ", "  ", ",", ".", "?", "!", "*", "**", "_", "__", "~", "~~",
      "`", "``", "[", "]", "(", ")", "<", ">", "<b>", "</b>", "&", "&amp;", "#", "|", ":", "-", "---", "+", "=",
      "\\", "\\*", "www.", "http://x.io", "a@b.io", "![", "](", "<https://y.io>", "\u00a0", "\u2028", "e\u0301",
    ];
    const taken = checkedWhereTaken(randomTexts(pieces, 29, 14, 5_000), (t) => (inlineOnly(t) ? fast.render(t) : null), slow);
    expect(taken).toBeGreaterThan(1_000);
  });
});

describe("the tame inline path (marked's inline parser, no sanitizer)", () => {
  const slow = createMarkdownRenderer(window, { fastPath: false });
  const fast = createMarkdownRenderer(window);

  it.each([
    "history 000123 with some *markdown* in it, about as long as a chat line",
    "see **this** and `that` and ~~not~~ this, it's \"quoted\"",
    "a > b, and `x > y` is code",
    "tricky * not emphasis * and _under_score_ and ***both***",
    "ünïcödé *é* 中文 `代码` 'single' \"double\"",
  ])("takes %j, with the same HTML as marked + DOMPurify", (text) => {
    expect(tameInline(text)).toBe(true);
    expect(fast.render(text)).toBe(slow.render(text));
  });

  it.each([
    "a [link](https://example.com)", "https://example.org", "www.example.com", "mail a@b.example",
    "x <b>y</b>", "x &amp; y", "an ![image](x.png)", "\\*escaped\\*", "no\u00a0break", "two\nlines", "# heading",
  ])("leaves %j to the sanitizer", (text) => {
    expect(tameInline(text)).toBe(false);
  });

  it("gives exactly what marked + DOMPurify give, on 5,000 random one-line strings of tricky pieces", () => {
    const pieces = [
      "a", "B", "é", "中", "1", " ", "  ", ",", ".", "?", "!", "*", "**", "***", "_", "__", "~", "~~", "`", "``",
      "'", '"', "(", ")", ">", "#", "|", "-", "+", "=", "$", "%", "^", "{", "}", "/", "\u2028", "e\u0301", "W", "w",
      "<", "&", "[", "]", ":", "@", "\\", "\u00a0",
    ];
    const taken = checkedWhereTaken(randomTexts(pieces, 31, 14, 5_000), (t) => (tameInline(t) ? fast.render(t) : null), slow);
    expect(taken).toBeGreaterThan(500);
  });
});
