// The message box: Enter sends, Shift+Enter starts a new line; disabled with the reason when offline.

import * as React from "react";
import { utf8Length } from "../core/frames";
import { PaperclipIcon } from "./Icons";

export interface MessageInputProps {
  onSend(text: string): void;
  /** Files attached (the button) or pasted (an image from the clipboard). */
  onFiles?(files: File[]): void;
  /** Why sending is impossible now, or null. */
  disabledReason: string | null;
  maxBytes: number;
}

export function MessageInput({ onSend, onFiles, disabledReason, maxBytes }: MessageInputProps): React.ReactElement {
  const [text, setText] = React.useState("");
  const picker = React.useRef<HTMLInputElement>(null);
  const tooLong = utf8Length(text) > maxBytes;
  const disabled = disabledReason !== null;

  const submit = (): void => {
    if (disabled || tooLong || text.trim() === "") return;
    onSend(text);
    setText("");
  };

  const onKeyDown = (event: React.KeyboardEvent<HTMLTextAreaElement>): void => {
    // Keep JupyterLab's notebook shortcuts (Shift+Enter runs a cell, "a" inserts one…) out of
    // the chat box; shortcuts with Ctrl/Cmd/Alt (save, palette) still reach the application.
    if (!event.ctrlKey && !event.metaKey && !event.altKey) event.stopPropagation();
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
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
      <div className="nbchat-input-row">
        <textarea
          className="nbchat-input-text"
          aria-label="Message"
          placeholder={disabled ? "You can't send messages right now" : "Message (Enter to send, Shift+Enter for a new line)"}
          rows={1}
          value={text}
          disabled={disabled}
          onChange={(event) => setText(event.target.value)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
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
          aria-label="Send"
          title="Send (Enter)"
        >
          Send
        </button>
      </div>
    </div>
  );
}
