// The header's tools: find in the room's history (matches marked, jump from one to the next),
// export it (Markdown or JSON, js/core/export.ts: downloaded from a blob URL, or saved next to
// the notebook through its kernel) and import a JSON export back (js/historyFile.ts).

import * as React from "react";
import type { ListedMessage } from "../chatState";
import { type ExportDocument, toMarkdown } from "../core/export";
import { type ImportResult, importRefusal, importSummary } from "../historyFile";
import { SaveContext } from "./FileCard";
import { DownloadIcon } from "./Icons";

/** Ids of the messages whose text contains `query` (ignoring case), oldest first. */
export function searchMessages(messages: readonly ListedMessage[], query: string): string[] {
  const q = query.trim().toLowerCase();
  if (q === "") return [];
  const found: string[] = [];
  for (const message of messages) {
    if (message.deleted !== true && message.text.toLowerCase().includes(q)) found.push(message.id);
  }
  return found;
}

export interface SearchBarProps {
  query: string;
  onQuery(query: string): void;
  matches: readonly string[];
  onJump(id: string): void;
  onClose(): void;
}

export function SearchBar({ query, onQuery, matches, onJump, onClose }: SearchBarProps): React.ReactElement {
  const input = React.useRef<HTMLInputElement>(null);
  // The newest match first; older ones with Enter (or the ↑ button), newer with Shift+Enter.
  const [current, setCurrent] = React.useState(-1);
  React.useEffect(() => input.current?.focus(), []);
  React.useEffect(() => {
    const newest = matches.length - 1;
    setCurrent(newest);
    if (newest >= 0) onJump(matches[newest]);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [matches]);
  const go = (step: number): void => {
    if (matches.length === 0) return;
    const next = (current + step + matches.length) % matches.length;
    setCurrent(next);
    onJump(matches[next]);
  };
  const onKeyDown = (event: React.KeyboardEvent<HTMLInputElement>): void => {
    if (!event.ctrlKey && !event.metaKey && !event.altKey) event.stopPropagation();
    if (event.key === "Enter") {
      event.preventDefault();
      go(event.shiftKey ? 1 : -1);
    } else if (event.key === "Escape") {
      event.preventDefault();
      onClose();
    }
  };
  const count =
    query.trim() === ""
      ? ""
      : matches.length === 0
        ? "No matches"
        : `${matches.length - current} of ${matches.length}`;
  return (
    <div className="nbchat-search" role="search" aria-label="Search the history">
      <input
        ref={input}
        type="search"
        className="nbchat-search-input"
        aria-label="Search messages"
        placeholder="Search messages (Enter: older, Shift+Enter: newer)"
        value={query}
        onChange={(event) => onQuery(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <span className="nbchat-search-count" role="status" aria-label="Search results">
        {count}
      </span>
      <button type="button" className="nbchat-action" aria-label="Older match" title="Older match (Enter)" disabled={matches.length === 0} onClick={() => go(-1)}>
        ↑
      </button>
      <button type="button" className="nbchat-action" aria-label="Newer match" title="Newer match (Shift+Enter)" disabled={matches.length === 0} onClick={() => go(1)}>
        ↓
      </button>
      <button type="button" className="nbchat-action" aria-label="Close search" title="Close (Escape)" onClick={onClose}>
        ✕
      </button>
    </div>
  );
}

/** A file name from the room name: safe characters only. */
export function exportName(room: string, extension: string): string {
  const base = room.replace(/\.ipynb$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "nbchat";
  return `${base}-chat.${extension}`;
}

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.style.display = "none";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** What the menu needs of the room's history (ChatProxy). */
export interface HistoryPort {
  exportDocument(): ExportDocument;
  importHistory(text: string): Promise<ImportResult>;
}

/** The status after saving `wanted`: the kernel picks a free name, so say so when it did. */
export function savedText(wanted: string, saved: string): string {
  return saved === wanted
    ? `Saved ${saved} next to the notebook.`
    : `Saved as ${saved} next to the notebook (${wanted} was taken).`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface ExportMenuProps {
  room: string;
  /** What an export holds, or a function giving it when asked (the chat passes one, so a
   *  new message does not filter the whole log or re-render the menu). */
  messages: readonly ListedMessage[] | (() => readonly ListedMessage[]);
  history: HistoryPort;
}

function ExportMenuView({ room, messages, history }: ExportMenuProps): React.ReactElement {
  const save = React.useContext(SaveContext);
  const [open, setOpen] = React.useState(false);
  const [status, setStatus] = React.useState<{ text: string; failed: boolean } | null>(null);
  const [busy, setBusy] = React.useState(false);
  const menu = React.useRef<HTMLDivElement>(null);
  const button = React.useRef<HTMLButtonElement>(null);
  const picker = React.useRef<HTMLInputElement>(null);
  React.useEffect(() => {
    if (open) menu.current?.querySelector("button")?.focus();
  }, [open]);
  const close = (): void => {
    setOpen(false);
    button.current?.focus();
  };
  const markdown = (): string => toMarkdown(room, typeof messages === "function" ? messages() : messages, Date.now());
  const json = (): string => `${JSON.stringify(history.exportDocument(), null, 1)}\n`;
  const run = (work: () => Promise<string>, failure: string): void => {
    close();
    setBusy(true);
    setStatus(null);
    work().then(
      (text) => setStatus({ text, failed: false }),
      (error: unknown) => {
        const text = errorText(error);
        setStatus({ text: text.startsWith("Not ") ? text : `${failure}: ${text}`, failed: true });
      },
    ).finally(() => setBusy(false));
  };
  const saveAs = (extension: "md" | "json"): void => {
    if (save === null) return;
    const name = exportName(room, extension);
    run(async () => {
      const text = extension === "md" ? markdown() : json();
      return savedText(name, await save(name, new TextEncoder().encode(text)));
    }, "Not saved");
  };
  const onPicked = (event: React.ChangeEvent<HTMLInputElement>): void => {
    const file = event.target.files?.[0];
    event.target.value = ""; // the same file can be picked again
    if (file === undefined) return;
    const refusal = importRefusal(file.size);
    if (refusal !== null) {
      setStatus({ text: refusal, failed: true });
      return;
    }
    run(async () => importSummary(await history.importHistory(await file.text())), "Not imported");
  };
  const onMenuKey = (event: React.KeyboardEvent<HTMLDivElement>): void => {
    event.stopPropagation();
    if (event.key === "Escape") {
      close();
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp" && event.key !== "Home" && event.key !== "End") return;
    event.preventDefault();
    const items = [...(menu.current?.querySelectorAll<HTMLButtonElement>("[role=menuitem]") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLButtonElement);
    const next =
      event.key === "Home" ? 0 : event.key === "End" ? items.length - 1 : (at + (event.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items[next]?.focus();
  };
  return (
    <span className="nbchat-export">
      <button
        ref={button}
        type="button"
        className="nbchat-action"
        aria-label="Export the history"
        aria-haspopup="menu"
        aria-expanded={open}
        title="Export or import the history"
        onClick={() => setOpen((o) => !o)}
      >
        <DownloadIcon />
      </button>
      <input
        ref={picker}
        type="file"
        accept=".json,application/json"
        className="nbchat-export-picker"
        aria-label="JSON export to import"
        tabIndex={-1}
        hidden
        onChange={onPicked}
      />
      {open && (
        <div ref={menu} className="nbchat-export-menu" role="menu" aria-label="History" onKeyDown={onMenuKey}>
          <button
            type="button"
            role="menuitem"
            onClick={() => {
              download(exportName(room, "md"), markdown(), "text/markdown");
              close();
            }}
          >
            Download Markdown (.md)
          </button>
          <button
            type="button"
            role="menuitem"
            onClick={() => {
              download(exportName(room, "json"), json(), "application/json");
              close();
            }}
          >
            Download JSON (.json, re-importable)
          </button>
          {save !== null && (
            <>
              <div className="nbchat-export-separator" role="separator" />
              <button type="button" role="menuitem" title="Through this notebook's kernel, into the notebook's folder" onClick={() => saveAs("md")}>
                Save Markdown next to the notebook
              </button>
              <button type="button" role="menuitem" title="Through this notebook's kernel, into the notebook's folder" onClick={() => saveAs("json")}>
                Save JSON next to the notebook
              </button>
            </>
          )}
          <div className="nbchat-export-separator" role="separator" />
          <button
            type="button"
            role="menuitem"
            title="Add the messages of a JSON export of this room to this browser's copy; signatures are checked"
            onClick={() => {
              close();
              picker.current?.click();
            }}
          >
            Import JSON…
          </button>
        </div>
      )}
      {/* Always in the page, so screen readers announce what lands in it. */}
      <span
        className={`nbchat-export-status${status?.failed === true ? " nbchat-export-failed" : ""}`}
        role="status"
        aria-label="History file"
        hidden={open || (!busy && status === null)}
      >
        {busy ? "Working…" : status?.text}
        {!busy && status !== null && (
          <button type="button" className="nbchat-action" aria-label="Dismiss" title="Dismiss" onClick={() => setStatus(null)}>
            ✕
          </button>
        )}
      </span>
    </span>
  );
}

export const ExportMenu = React.memo(ExportMenuView);
