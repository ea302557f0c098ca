// A room's history as a Markdown file people read and a JSON file peers re-import
// (docs/protocol.md §4.6). Mirrors src/nbchat/core/export.py; tests/fixtures/export_cases.json
// pins both. Pure: no I/O.

import type { MessageState } from "./edits";

export const EXPORT_FORMAT = "nbchat-export/1";
/** How much of the original a reply quotes. */
export const QUOTE_CHARS = 80;

/** A file that is not an nbchat export; the message says what is wrong. */
export class InvalidExport extends Error {}

export interface ExportDocument {
  format: typeof EXPORT_FORMAT;
  room: string;
  exported: number;
  entries: unknown[];
}

function utc(ms: number, seconds = true): string {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

/** The export document: every log entry of `room` as held, in log order. */
export function toJson(room: string, entries: Iterable<unknown>, exported: number): ExportDocument {
  return { format: EXPORT_FORMAT, room, exported, entries: [...entries] };
}

/** `[room, entries]` from an export document; the log validates each entry. */
export function fromJson(document: unknown): [string, unknown[]] {
  const doc = document as Record<string, unknown> | null;
  if (typeof doc !== "object" || doc === null || Array.isArray(doc) || doc.format !== EXPORT_FORMAT) {
    throw new InvalidExport(`not an nbchat export (expected format '${EXPORT_FORMAT}')`);
  }
  if (typeof doc.room !== "string" || !Array.isArray(doc.entries)) {
    throw new InvalidExport("an nbchat export needs a room name and a list of entries");
  }
  return [doc.room, doc.entries];
}

function quote(state: MessageState | undefined): string {
  if (state === undefined) return "> ↪ a message not in this export";
  if (state.deleted) return `> ↪ **${state.user.display_name}**: _message deleted_`;
  let first = state.text.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "").split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/)[0] ?? "";
  const chars = [...first];
  if (chars.length > QUOTE_CHARS) first = `${chars.slice(0, QUOTE_CHARS - 1).join("")}…`;
  return `> ↪ **${state.user.display_name}**: ${first}`;
}

/** The room as Markdown: a heading, then each shown message in log order. */
export function toMarkdown(room: string, states: readonly MessageState[], exported: number): string {
  const byId = new Map(states.map((s) => [s.id, s]));
  const count = `${states.length} message${states.length === 1 ? "" : "s"}`;
  const lines = [`# ${room}`, "", `Exported ${utc(exported, false)} · ${count}`, ""];
  for (const state of states) {
    let header = `**${state.user.display_name}** · ${utc(state.time)}`;
    if (state.edited !== null && !state.deleted) header += " · edited";
    lines.push("---", "", header, "");
    if (state.reply_to !== null) lines.push(quote(byId.get(state.reply_to)), "");
    lines.push(state.deleted ? "_message deleted_" : state.text, "");
    if (state.reactions.length > 0) {
      lines.push(state.reactions.map((r) => `${r.emoji} ${r.users.join(", ")}`).join(" · "), "");
    }
  }
  return lines.join("\n");
}
