// The message box: Enter sends, Shift+Enter starts a new line; disabled with the reason when offline.
// It also edits (Enter saves, Escape cancels; ArrowUp in an empty box edits our last message),
// answers (a "Replying to" bar), autocompletes `@` mentions and reports typing.

import * as React from "react";
import type { Quote } from "../chatState";
import { utf8Length } from "../core/frames";
import type { Identity } from "../protocol";
import { PaperclipIcon } from "./Icons";

/** The `@word` being typed just before the caret, or null. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const match = /(?:^|[^A-Za-z0-9_.\-+@])@([A-Za-z0-9_-]*)$/.exec(text.slice(0, caret));
  return match === null ? null : { start: caret - match[1].length - 1, query: match[1] };
}

/** People to offer for `query`: username or display name starting with it, ours last. */
export function mentionCandidates(users: readonly Identity[], query: string, limit = 6): Identity[] {
  const q = query.toLowerCase();
  const seen = new Set<string>();
  const found: Identity[] = [];
  for (const user of users) {
    if (seen.has(user.username)) continue;
    const names = [user.username, user.display_name, user.name].filter(Boolean).map((n) => n.toLowerCase());
    if (names.some((n) => n.startsWith(q) || n.split(/\s+/).some((part) => part.startsWith(q)))) {
      seen.add(user.username);
      found.push(user);
    }
  }
  return found.slice(0, limit);
}

export interface MessageInputProps {
  onSend(text: string): void;
  /** Files attached (the button) or pasted (an image from the clipboard). */
  onFiles?(files: File[]): void;
  /** Why sending is impossible now, or null. */
  disabledReason: string | null;
  maxBytes: number;
  /** The message being edited (its text goes in the box), or null. */
  editing?: { id: string; text: string } | null;
  onEdit?(id: string, text: string): void;
  onCancelEdit?(): void;
  /** ArrowUp in an empty box: edit our last message. */
  onEditLast?(): void;
  /** The message being answered, or null. */
  replying?: Quote | null;
  onCancelReply?(): void;
  /** Whether we are typing (called on every change; the proxy throttles). */
  onTyping?(typing: boolean): void;
  /** People to offer after `@`. */
  people?: readonly Identity[];
}

function MessageInputView({
  onSend,
  onFiles,
  disabledReason,
  maxBytes,
  editing = null,
  onEdit,
  onCancelEdit,
  onEditLast,
  replying = null,
  onCancelReply,
  onTyping,
  people = [],
}: MessageInputProps): React.ReactElement {
  const [text, setText] = React.useState("");
  const [caret, setCaret] = React.useState(0);
  const [choice, setChoice] = React.useState(0);
  const [dismissed, setDismissed] = React.useState<number | null>(null);
  const picker = React.useRef<HTMLInputElement>(null);
  const box = React.useRef<HTMLTextAreaElement>(null);
  /** Where the caret goes once the box shows a completed mention: set in the same commit, so a
   *  key typed right after lands there (an animation frame later, it moved keys typed meanwhile). */
  const caretAfterRender = React.useRef<number | null>(null);
  const focusAfterRender = React.useRef(false);
  React.useLayoutEffect(() => {
    const at = caretAfterRender.current;
    if (at === null) return;
    caretAfterRender.current = null;
    if (focusAfterRender.current) box.current?.focus();
    focusAfterRender.current = false;
    box.current?.setSelectionRange(at, at);
  });
  const draft = React.useRef("");
  const tooLong = utf8Length(text) > maxBytes;
  const disabled = disabledReason !== null;
  const listId = React.useId();

  // Editing: the message's text replaces the draft (kept, and back after), focus and caret at
  // the end, in the commit that shows it (an animation frame later moved keys typed meanwhile).
  const editingId = editing?.id ?? null;
  React.useLayoutEffect(() => {
    if (editing === null) return;
    draft.current = box.current?.value ?? "";
    setText(editing.text);
    caretAfterRender.current = editing.text.length;
    focusAfterRender.current = true;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [editingId]);
  React.useEffect(() => {
    if (replying !== null) box.current?.focus();
  }, [replying]);

  const query = disabled ? null : mentionQuery(text, caret);
  const candidates = query !== null && query.start !== dismissed ? mentionCandidates(people, query.query) : [];
  const active = candidates.length > 0 ? Math.min(choice, candidates.length - 1) : -1;

  const change = (value: string, at: number): void => {
    setText(value);
    setCaret(at);
    setChoice(0);
    if (editing === null) onTyping?.(value.trim() !== "");
  };

  const complete = (user: Identity): void => {
    if (query === null) return;
    const insert = `@${user.username} `;
    const value = text.slice(0, query.start) + insert + text.slice(caret);
    const at = query.start + insert.length;
    change(value, at);
    caretAfterRender.current = at;
  };

  const cancelEdit = (): void => {
    setText(draft.current);
    draft.current = "";
    onCancelEdit?.();
  };

  const submit = (): void => {
    if (disabled || tooLong) return;
    if (editing !== null) {
      if (text.trim() === "" || text === editing.text) {
        cancelEdit();
        return;
      }
      onEdit?.(editing.id, text);
      setText(draft.current);
      draft.current = "";
      return;
    }
    if (text.trim() === "") return;
    onSend(text);
    setText("");
    setCaret(0);
  };

  const onKeyDown = (event: React.KeyboardEvent<HTMLTextAreaElement>): void => {
    // Keep JupyterLab's notebook shortcuts (Shift+Enter runs a cell, "a" inserts one…) out of
    // the chat box; shortcuts with Ctrl/Cmd/Alt (save, palette) still reach the application.
    if (!event.ctrlKey && !event.metaKey && !event.altKey) event.stopPropagation();
    if (event.nativeEvent.isComposing) return;
    if (candidates.length > 0) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        setChoice((active + step + candidates.length) % candidates.length);
        return;
      }
      if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
        event.preventDefault();
        complete(candidates[active]);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        setDismissed(query?.start ?? null);
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && editing !== null) {
      event.preventDefault();
      cancelEdit();
    } else if (event.key === "Escape" && replying !== null) {
      event.preventDefault();
      onCancelReply?.();
    } else if (event.key === "ArrowUp" && text === "" && editing === null && onEditLast !== undefined) {
      event.preventDefault();
      onEditLast();
    }
  };

  const onPaste = (event: React.ClipboardEvent<HTMLTextAreaElement>): void => {
    const pasted = Array.from(event.clipboardData.files);
    if (pasted.length === 0 || onFiles === undefined || disabled) return;
    event.preventDefault();
    onFiles(pasted);
  };

  return (
    <div className="nbchat-input">
      {disabled && (
        <div className="nbchat-input-reason" role="status">
          {disabledReason}
        </div>
      )}
      {tooLong && (
        <div className="nbchat-input-reason" role="status">
          Message too long: the limit is {maxBytes.toLocaleString()} bytes.
        </div>
      )}
      {editing !== null && (
        <div className="nbchat-input-mode" role="status">
          <span>Editing your message — Enter to save, Escape to cancel</span>
          <button type="button" className="nbchat-input-mode-cancel" onClick={cancelEdit} aria-label="Cancel editing">
            ✕
          </button>
        </div>
      )}
      {editing === null && replying !== null && (
        <div className="nbchat-input-mode" role="status">
          <span>
            Replying to <strong>{replying.name}</strong>: <span className="nbchat-quote-line">{replying.line}</span>
          </span>
          <button type="button" className="nbchat-input-mode-cancel" onClick={onCancelReply} aria-label="Cancel reply">
            ✕
          </button>
        </div>
      )}
      {candidates.length > 0 && (
        <ul className="nbchat-mentions" role="listbox" id={listId} aria-label="Mention someone">
          {candidates.map((user, i) => (
            <li
              key={user.username}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              className={`nbchat-mention-option${i === active ? " nbchat-mention-active" : ""}`}
              onMouseDown={(event) => {
                event.preventDefault(); // keep the focus in the box
                complete(user);
              }}
              onMouseEnter={() => setChoice(i)}
            >
              <span className="nbchat-mention-name">{user.display_name || user.name || user.username}</span>
              <span className="nbchat-mention-username">@{user.username}</span>
            </li>
          ))}
        </ul>
      )}
      <div className="nbchat-input-row">
        <textarea
          ref={box}
          className={`nbchat-input-text${editing !== null ? " nbchat-input-editing" : ""}`}
          aria-label="Message"
          aria-autocomplete="list"
          aria-controls={candidates.length > 0 ? listId : undefined}
          aria-expanded={candidates.length > 0}
          aria-activedescendant={active >= 0 ? `${listId}-${active}` : undefined}
          placeholder={disabled ? "You can't send messages right now" : "Message (Enter to send, Shift+Enter for a new line)"}
          rows={1}
          value={text}
          disabled={disabled}
          onChange={(event) => change(event.target.value, event.target.selectionStart ?? event.target.value.length)}
          onSelect={(event) => setCaret(event.currentTarget.selectionStart ?? 0)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
          onBlur={() => setDismissed(query?.start ?? null)}
          onFocus={() => setDismissed(null)}
        />
        {onFiles !== undefined && (
          <>
            <input
              ref={picker}
              type="file"
              multiple
              hidden
              aria-label="File to share"
              onChange={(event) => {
                const chosen = Array.from(event.target.files ?? []);
                event.target.value = "";
                if (chosen.length > 0) onFiles(chosen);
              }}
            />
            <button
              type="button"
              className="nbchat-input-attach"
              onClick={() => picker.current?.click()}
              disabled={disabled}
              aria-label="Attach a file"
              title="Share a file peer to peer (or drop it on the chat, or paste an image)"
            >
              <PaperclipIcon />
            </button>
          </>
        )}
        <button
          type="button"
          className="nbchat-input-send"
          onClick={submit}
          disabled={disabled || tooLong || text.trim() === ""}
          aria-label={editing !== null ? "Save" : "Send"}
          title={editing !== null ? "Save (Enter)" : "Send (Enter)"}
        >
          {editing !== null ? "Save" : "Send"}
        </button>
      </div>
    </div>
  );
}

/** Re-renders for its own typing and for what it is given, not for every message shown. */
export const MessageInput = React.memo(MessageInputView);
