// A room's history as a Markdown file people read and a JSON file peers re-import
// (docs/protocol.md §4.6). Mirrors src/nbchat/core/export.py; tests/fixtures/export_cases.json
// pins both. Pure: no I/O.

import type { MessageState, Reaction } from "./edits";

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
  /** The server's certificates of the entries' authors (signed rooms): public, each signed by
   *  the server, so an importer checks the entries' signatures without meeting their authors. */
  certs?: unknown[];
}

/** What the Markdown needs of a message: a MessageState, or a list row whose amendment fields
 *  are absent when nobody amended it (absent: not edited, not deleted, no reactions). */
export type MarkdownMessage = Pick<MessageState, "id" | "user" | "time" | "text"> & {
  reply_to?: string | null;
  edited?: number | null;
  deleted?: boolean;
  reactions?: readonly Reaction[];
};

function utc(ms: number, seconds = true): string {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, seconds ? 19 : 16)} UTC`;
}

/** The export document: every log entry of `room` as held, in log order (and the authors'
 *  certificates, when given). */
export function toJson(room: string, entries: Iterable<unknown>, exported: number, certs?: Iterable<unknown>): ExportDocument {
  const document: ExportDocument = { format: EXPORT_FORMAT, room, exported, entries: [...entries] };
  if (certs !== undefined) document.certs = [...certs];
  return document;
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
  if (doc.certs !== undefined && !Array.isArray(doc.certs)) {
    throw new InvalidExport("an nbchat export's certs must be a list");
  }
  return [doc.room, doc.entries];
}

/** The certificates an export carries (none in an export from an unsigned room or a kernel). */
export function exportCerts(document: unknown): unknown[] {
  const certs = (document as Record<string, unknown> | null)?.certs;
  return Array.isArray(certs) ? certs : [];
}

function quote(state: MarkdownMessage | undefined): string {
  if (state === undefined) return "> ↪ a message not in this export";
  if (state.deleted === true) return `> ↪ **${state.user.display_name}**: _message deleted_`;
  let first = state.text.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "").split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/)[0] ?? "";
  const chars = [...first];
  if (chars.length > QUOTE_CHARS) first = `${chars.slice(0, QUOTE_CHARS - 1).join("")}…`;
  return `> ↪ **${state.user.display_name}**: ${first}`;
}

/** The room as Markdown: a heading, then each shown message in log order. */
export function toMarkdown(room: string, states: readonly MarkdownMessage[], exported: number): string {
  const byId = new Map(states.map((s) => [s.id, s]));
  const count = `${states.length} message${states.length === 1 ? "" : "s"}`;
  const lines = [`# ${room}`, "", `Exported ${utc(exported, false)} · ${count}`, ""];
  for (const state of states) {
    let header = `**${state.user.display_name}** · ${utc(state.time)}`;
    const deleted = state.deleted === true;
    if (state.edited != null && !deleted) header += " · edited";
    lines.push("---", "", header, "");
    if (state.reply_to != null) lines.push(quote(byId.get(state.reply_to)), "");
    lines.push(deleted ? "_message deleted_" : state.text, "");
    const reactions = state.reactions ?? [];
    if (reactions.length > 0) {
      lines.push(reactions.map((r) => `${r.emoji} ${r.users.join(", ")}`).join(" · "), "");
    }
  }
  return lines.join("\n");
}
