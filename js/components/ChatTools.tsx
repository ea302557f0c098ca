// The header's tools: find in the room's history (matches marked, jump from one to the next)
// and export it (Markdown or JSON, downloaded from a blob URL, js/core/export.ts).

import * as React from "react";
import type { ListedMessage } from "../chatState";
import { toJson, toMarkdown } from "../core/export";
import type { MessageState } from "../core/edits";
import type { ChatMessage } from "../protocol";
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

export interface ExportMenuProps {
  room: string;
  messages: readonly ListedMessage[];
  entries: readonly ChatMessage[];
}

export function ExportMenu({ room, messages, entries }: ExportMenuProps): React.ReactElement {
  const [open, setOpen] = React.useState(false);
  const menu = React.useRef<HTMLDivElement>(null);
  const button = React.useRef<HTMLButtonElement>(null);
  React.useEffect(() => {
    if (open) menu.current?.querySelector("button")?.focus();
  }, [open]);
  const close = (): void => {
    setOpen(false);
    button.current?.focus();
  };
  const asMarkdown = (): void => {
    const states: MessageState[] = messages.map((m) => ({
      id: m.id,
      author: m.author,
      user: m.user,
      time: m.time,
      text: m.text,
      reply_to: m.reply_to ?? null,
      edited: m.edited ?? null,
      deleted: m.deleted ?? false,
      reactions: [...(m.reactions ?? [])],
    }));
    download(exportName(room, "md"), toMarkdown(room, states, Date.now()), "text/markdown");
    close();
  };
  const asJson = (): void => {
    download(exportName(room, "json"), `${JSON.stringify(toJson(room, entries, Date.now()), null, 1)}\n`, "application/json");
    close();
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
        title="Export the history"
        onClick={() => setOpen((o) => !o)}
      >
        <DownloadIcon />
      </button>
      {open && (
        <div
          ref={menu}
          className="nbchat-export-menu"
          role="menu"
          aria-label="Export"
          onKeyDown={(event) => {
            event.stopPropagation();
            if (event.key === "Escape") close();
          }}
        >
          <button type="button" role="menuitem" onClick={asMarkdown}>
            Markdown (.md)
          </button>
          <button type="button" role="menuitem" onClick={asJson}>
            JSON (.json, re-importable)
          </button>
        </div>
      )}
    </span>
  );
}
