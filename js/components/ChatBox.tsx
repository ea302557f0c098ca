// The chat: status line, messages, message box and the users column. State comes from ChatProxy.

import * as React from "react";
import type { ChatProxy } from "../ChatProxy";
import type { ChatState } from "../chatState";
import { createMarkdownRenderer } from "../markdown";
import { FilesContext, SaveContext } from "./FileCard";
import { LocalCopyInfo } from "./LocalCopyInfo";
import { MessageInput } from "./MessageInput";
import { MessagesList } from "./MessagesList";
import { UsersList } from "./UsersList";

export interface ChatBoxProps {
  proxy: ChatProxy;
  room: string;
  /** Saves a received file next to the notebook (through the widget's kernel), if there is one. */
  saveFile?: ((name: string, bytes: Uint8Array) => Promise<string>) | null;
}

function useChatState(proxy: ChatProxy): ChatState {
  return React.useSyncExternalStore(
    React.useCallback((notify: () => void) => proxy.subscribe(notify), [proxy]),
    () => proxy.state,
  );
}

/** A notebook-path room shows as its file name; the full name is in the tooltip. */
function roomLabel(room: string): string {
  const parts = room.split(/[\\/]/).filter(Boolean);
  return parts[parts.length - 1] ?? room;
}

export function ChatBox({ proxy, room, saveFile = null }: ChatBoxProps): React.ReactElement {
  const state = useChatState(proxy);
  const markdown = React.useMemo(() => createMarkdownRenderer(window), []);
  const [sendError, setSendError] = React.useState<string | null>(null);

  const onSend = React.useCallback(
    (text: string) => {
      try {
        proxy.send(text);
        setSendError(null);
      } catch (error) {
        setSendError(error instanceof Error ? error.message : String(error));
      }
    },
    [proxy],
  );

  const onFiles = React.useCallback(
    (files: File[]) => {
      for (const file of files) {
        proxy.shareFile(file).then(
          () => setSendError(null),
          (error: unknown) => setSendError(error instanceof Error ? error.message : String(error)),
        );
      }
    },
    [proxy],
  );
  const [dragging, setDragging] = React.useState(false);
  const hasFiles = (event: React.DragEvent): boolean => Array.from(event.dataTransfer.types).includes("Files");
  const dropHandlers = {
    onDragOver: (event: React.DragEvent) => {
      if (!hasFiles(event) || state.cannotSend !== null) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      setDragging(true);
    },
    onDragLeave: (event: React.DragEvent) => {
      if (event.currentTarget === event.target) setDragging(false);
    },
    onDrop: (event: React.DragEvent) => {
      setDragging(false);
      const dropped = Array.from(event.dataTransfer.files);
      if (dropped.length === 0 || state.cannotSend !== null) return;
      event.preventDefault();
      event.stopPropagation(); // not JupyterLab's: it would open the file from the server
      onFiles(dropped);
    },
  };
  const onClearLocalCopy = React.useCallback(() => void proxy.clearLocalCopy(), [proxy]);

  return (
    <FilesContext.Provider value={proxy.files}>
    <SaveContext.Provider value={saveFile}>
    <div className={`nbchat nbchat-phase-${state.phase}${dragging ? " nbchat-dragging" : ""}`} {...dropHandlers}>
      <div className="nbchat-header">
        <span className="nbchat-room" title={`Room: ${room}${state.audience ? `\nWho can join: ${state.audience}` : ""}`}>
          # {roomLabel(room)}
        </span>
        {state.audience !== null && (
          <span className="nbchat-audience" aria-label="Who can join">
            {state.audience}
          </span>
        )}
        {state.sealed === true && (
          <span
            className="nbchat-sealed"
            aria-label="Protected by a passphrase"
            title="Protected by a passphrase: connection offers are sealed end to end, so the server can neither read nor change them"
          >
            <span aria-hidden="true">🔒</span> passphrase
          </span>
        )}
        <span className="nbchat-status" role="status" aria-label="Chat status">
          <span className="nbchat-status-dot" aria-hidden="true" />
          {state.status}
        </span>
      </div>
      {state.notice !== null && (
        <div className="nbchat-notice" role="status" aria-label="Chat notice">
          {state.notice}
        </div>
      )}
      <div className="nbchat-body">
        <div className="nbchat-main">
          <MessagesList messages={state.messages} users={state.users} selfId={state.selfId} markdown={markdown} />
          {sendError !== null && (
            <div className="nbchat-input-reason" role="alert">
              {sendError}
            </div>
          )}
          <MessageInput onSend={onSend} onFiles={onFiles} disabledReason={state.cannotSend} maxBytes={state.maxMessageBytes} />
          <LocalCopyInfo stats={state.localCopy ?? null} onClear={onClearLocalCopy} />
        </div>
        <UsersList users={state.users} selfId={state.selfId} />
      </div>
      {dragging && (
        <div className="nbchat-drop" aria-hidden="true">
          Drop to share peer to peer
        </div>
      )}
    </div>
    </SaveContext.Provider>
    </FilesContext.Provider>
  );
}
