// Reading an export file picked in the browser and saying what importing it did (the header's
// export menu, components/ChatTools.tsx). Pure: the document's format is core/export's; the
// checks of its entries are the room sync's (RoomSync.importHistory) and, in signed rooms,
// authorship.ts's.

import { InvalidExport, exportCerts, fromJson } from "./core/export";
import { FILE_LIMIT_BYTES } from "./core/files";
import { sizeError } from "./core/rich";

/** What importing a file did, entry by entry (a message, an edit, a delete or a reaction). */
export interface ImportResult {
  /** New messages now in the log. */
  messages: number;
  /** New edits, deletes and reactions now in the log. */
  amendments: number;
  /** Entries the log already held (skipped). */
  held: number;
  /** Entries whose signature does not verify with their author's certificate (signed rooms):
   *  dropped, never shown as anyone. */
  unverified: number;
  /** Entries the log refused: malformed, over the room's size limit, implausible clocks, or
   *  copies of a connected person's messages (who alone sends them). */
  invalid: number;
}

/** Why a picked file of `size` bytes is not even read, or null. */
export function importRefusal(size: number): string | null {
  return size > FILE_LIMIT_BYTES ? `Not imported: ${sizeError("the file", size, FILE_LIMIT_BYTES)}.` : null;
}

/** The entries and certificates of an export of `room`, or an Error saying why not. */
export function readExport(text: string, room: string): { entries: unknown[]; certs: unknown[] } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new Error("Not imported: the file is not JSON (pick a .json file exported from an nbchat room).");
  }
  let found: [string, unknown[]];
  try {
    found = fromJson(document);
  } catch (error) {
    if (error instanceof InvalidExport) throw new Error(`Not imported: ${error.message}.`);
    throw error;
  }
  const [from, entries] = found;
  if (from !== room) throw new Error(`Not imported: this is the history of room “${from}”, not of “${room}”.`);
  return { entries, certs: exportCerts(document) };
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** One line for the status after an import. */
export function importSummary(result: ImportResult): string {
  const parts: string[] = [];
  if (result.messages + result.amendments === 0) {
    parts.push("Nothing new imported.");
  } else {
    let line = `Imported ${count(result.messages, "message", "messages")}`;
    if (result.amendments > 0) line += ` and ${count(result.amendments, "edit or reaction", "edits and reactions")}`;
    parts.push(`${line}.`);
  }
  if (result.held > 0) parts.push(`${result.held} already here.`);
  if (result.unverified > 0) {
    parts.push(`${count(result.unverified, "entry", "entries")} left out: signature not verified (forged or altered).`);
  }
  if (result.invalid > 0) parts.push(`${count(result.invalid, "entry", "entries")} left out: invalid.`);
  return parts.join(" ");
}
