// The message box: Enter sends, Shift+Enter starts a new line; disabled with the reason when offline.

import * as React from "react";
import { utf8Length } from "../core/frames";

export interface MessageInputProps {
  onSend(text: string): void;
  /** Why sending is impossible now, or null. */
  disabledReason: string | null;
  maxBytes: number;
}

export function MessageInput({ onSend, disabledReason, maxBytes }: MessageInputProps): React.ReactElement {
  const [text, setText] = React.useState("");
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
        />
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
