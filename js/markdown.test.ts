// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { createMarkdownRenderer } from "./markdown";

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
