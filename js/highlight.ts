// Syntax highlighting for code blocks in messages: highlight.js's core with the languages people
// paste in a notebook chat, bundled (no network). Output is escaped HTML with hljs-* classes,
// and still goes through the sanitizer.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import r from "highlight.js/lib/languages/r";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

for (const [name, language] of Object.entries({ bash, css, javascript, json, markdown, python, r, shell, sql, typescript, xml, yaml })) {
  hljs.registerLanguage(name, language);
}

/** Longer code is shown plain: highlighting is for reading, not worth a frozen page. */
const MAX_HIGHLIGHT = 20_000;

/** Highlighted HTML for `code` in `lang`, or null (unknown language, too long). */
export function highlight(code: string, lang: string | undefined): string | null {
  const name = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  if (name === "" || code.length > MAX_HIGHLIGHT || hljs.getLanguage(name) === undefined) return null;
  try {
    return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
  } catch (error) {
    console.warn(`nbchat: could not highlight a ${name} block (${String(error)})`);
    return null;
  }
}
