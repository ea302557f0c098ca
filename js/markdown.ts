// Markdown from peers, rendered with marked and sanitized with DOMPurify: peer text is untrusted.

import createDOMPurify, { type DOMPurify } from "dompurify";
import { Marked } from "marked";
import { highlight } from "./highlight";

/** Tags that could load remote content, run code, restyle the page or phish. */
const FORBIDDEN_TAGS = [
  "img", "picture", "source", "video", "audio", "track", "iframe", "frame", "frameset",
  "object", "embed", "style", "link", "meta", "base", "script", "noscript", "template",
  "svg", "math", "form", "input", "button", "textarea", "select", "option", "dialog",
];
const FORBIDDEN_ATTRIBUTES = ["style", "srcset", "formaction", "background", "ping", "poster", "id", "name"];
/** Only web and mail links; relative, javascript:, data: and the rest are stripped. */
const SAFE_URI = /^(?:https?:|mailto:)/i;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CACHE_SIZE = 2_000;

/**
 * marked's emphasis parsing is quadratic in the number of `*` / `_` marks: a 60 KB message of
 * "_a_a…" takes ~10 s to parse, freezing the page. A long message with that many marks shows as
 * plain text instead (code blocks are not affected by the cost, but are counted: rare enough).
 */
const LONG_TEXT = 8_000;
const MAX_EMPHASIS_MARKS = 2_000;

function tooCostly(text: string): boolean {
  if (text.length <= LONG_TEXT) return false;
  let marks = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if ((c === 0x2a || c === 0x5f) && ++marks > MAX_EMPHASIS_MARKS) return true;
  }
  return false;
}

function plainText(text: string): string {
  return `<p>${escapeHtml(text).replace(/\n/g, "<br>")}</p>`;
}

/**
 * Chat lines are mostly plain words. Text made only of letters, marks, digits, single-line
 * spaces and `, . ? ! ' " ( ) ; -` (no Markdown syntax, no URL, no HTML, no entity) needs
 * neither marked nor DOMPurify: every line is text, joined by <br> (`breaks`), in one <p>.
 * What could start a block (a list's `-`, `1.` or `1)`; a line of dashes; an indent; a blank
 * line) or an autolink (`www.`) goes the long way. The output is byte for byte what
 * marked + DOMPurify give for such text (js/markdown.test.ts compares both on a corpus and on
 * random strings); `"` and `'` come out as DOMPurify serializes them, unescaped in text.
 */
const PLAIN_CHARS = /^[\p{L}\p{M}\p{N} ,.?!'"();\-\n]+$/u;
const BLOCK_START = /^(?:[ ]|-|\d+[.)]|$)|[ ]$/;
const LONG_PATH = /www\./i;

/** The safe HTML of `text` when it is plain (see PLAIN_CHARS), else null. */
export function plainHtml(text: string): string | null {
  if (text.length > LONG_TEXT || !PLAIN_CHARS.test(text) || LONG_PATH.test(text)) return null;
  const lines = text.split("\n");
  for (const line of lines) if (BLOCK_START.test(line)) return null;
  return `<p>${lines.join("<br>")}</p>\n`;
}

/**
 * A chat line with Markdown in it is still mostly one line: one paragraph, whatever it says
 * inline. A single line that cannot open a block (no leading space or tab; not starting with
 * a heading, quote, list, rule, fence, HTML, table or link-definition character, nor a digit,
 * which could number a list) and has no trailing space or control character is exactly
 * `<p>` + its inline Markdown + `</p>`: marked's inline parser alone renders it, without the
 * block tokenizer, whose regexps, compiled, are ~0.6 MB of the page's heap (js/markdown.test.ts
 * compares both ways on a corpus and on random strings).
 */
const INLINE_ONLY = /^[^\s#>\-*+_=`~<[|:\d][^\0-\x1f\x7f]*(?<=[^\s])$/u;

/** Whether `text` is one line that marked would make a single paragraph of (see INLINE_ONLY). */
export function inlineOnly(text: string): boolean {
  return text.length <= LONG_TEXT && INLINE_ONLY.test(text);
}

/**
 * One line of inline Markdown that can only make emphasis, strong, strikethrough and code
 * spans: no raw HTML or entity (`<`, `&`), no link, image or autolink (`[`, `]`, `:`, `@`,
 * `www.`), no backslash escape, no no-break space (DOMPurify writes it as `&nbsp;`). marked's
 * HTML for it has only those tags, no attribute, and its text escaped; DOMPurify keeps all of
 * it and only writes `&quot;` and `&#39;` back as the characters they are. So that is done
 * here, without the sanitizer's parse, walk and serialization (~1 ms a message, the most of
 * a late joiner's first screen; js/markdown.test.ts compares both ways).
 */
const TAME_INLINE = /^[^<&[\]:@\\\u00a0]*$/;

/** Whether one line's inline HTML (see inlineOnly) needs no sanitizer (see TAME_INLINE). */
function tame(text: string): boolean {
  return TAME_INLINE.test(text) && !LONG_PATH.test(text);
}

/** Whether the inline HTML marked makes of `text` needs no sanitizer. */
export function tameInline(text: string): boolean {
  return inlineOnly(text) && tame(text);
}

const SERIALIZED = /&quot;|&#39;/g;

export interface MarkdownOptions {
  /** Plain text skips marked and DOMPurify (same output); off only to compare both paths. */
  fastPath?: boolean;
}

export interface MarkdownRenderer {
  /** Safe HTML for `text`. */
  render(text: string): string;
  /** `html` from a peer (a rich message's text/html: a DataFrame's table) through the same
   *  sanitizer: tables survive; scripts, styles, handlers, images and frames do not. */
  renderHtml(html: string): string;
}

export function createMarkdownRenderer(
  window: Window & typeof globalThis,
  { fastPath = true }: MarkdownOptions = {},
): MarkdownRenderer {
  const purify: DOMPurify = createDOMPurify(window);
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A") {
      const href = node.getAttribute("href");
      if (href === null || !SAFE_URI.test(href.trim())) node.removeAttribute("href");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  const marked = new Marked({
    gfm: true,
    breaks: true,
    async: false,
    renderer: {
      // Raw HTML in a message is shown as the text it is, never interpreted.
      html: ({ text, block }) => (block ? `<p>${escapeHtml(text.trim())}</p>` : escapeHtml(text)),
      // Images are never loaded (a remote image is a read receipt for whoever serves it):
      // each shows as a link to it, so a message of only an image still says something.
      // Code blocks: highlighted when the language is one we bundle; plain and escaped otherwise.
      code: ({ text, lang }) => {
        const lit = highlight(text, lang);
        const body = lit ?? escapeHtml(text);
        return `<pre class="nbchat-code"><code class="hljs${lit !== null ? "" : " nbchat-plain"}">${body}</code></pre>\n`;
      },
      image: ({ href, text }) =>
        `<a href="${escapeHtml(href)}" class="nbchat-image-link">[image: ${escapeHtml(text || "no description")}]</a>`,
    },
  });
  // Scrolling a long history re-mounts rows: keep recent renderings instead of re-parsing.
  const cache = new Map<string, string>();
  const sanitize = (text: string): string => {
    const plain = fastPath ? plainHtml(text) : null;
    if (plain !== null) return plain;
    if (tooCostly(text)) return plainText(text);
    let html: string;
    try {
      if (fastPath && inlineOnly(text)) {
        const inline = marked.parseInline(text, { async: false });
        if (tame(text)) return `<p>${inline.replace(SERIALIZED, (e) => (e === "&quot;" ? '"' : "'"))}</p>\n`;
        html = `<p>${inline}</p>\n`;
      } else {
        html = marked.parse(text, { async: false });
      }
    } catch (error) {
      // marked recurses per nesting level: 60,000 ">" overflow the stack. Show the text as
      // it is rather than let one message take the whole chat down while rendering.
      console.warn(`nbchat: could not render a message as Markdown (${String(error)}); showing it as text`);
      return plainText(text);
    }
    return clean(html);
  };
  const clean = (html: string, forbidClasses = false): string =>
    purify.sanitize(html, {
      FORBID_TAGS: FORBIDDEN_TAGS,
      // A peer's raw HTML could borrow JupyterLab's classes (a fixed overlay, say): drop them.
      FORBID_ATTR: forbidClasses ? [...FORBIDDEN_ATTRIBUTES, "class"] : FORBIDDEN_ATTRIBUTES,
      ALLOWED_URI_REGEXP: SAFE_URI,
      ALLOW_DATA_ATTR: false,
      ALLOW_ARIA_ATTR: false,
    });
  return {
    render(text: string): string {
      let html = cache.get(text);
      if (html === undefined) {
        html = sanitize(text);
        if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
        cache.set(text, html);
      }
      return html;
    },
    renderHtml(html: string): string {
      const key = `\u0000html\u0000${html}`;
      let safe = cache.get(key);
      if (safe === undefined) {
        safe = clean(html, true);
        if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
        cache.set(key, safe);
      }
      return safe;
    },
  };
}
