// The chat: status line, messages, message box and the users column. State comes from ChatProxy.

import * as React from "react";
import type { ChatProxy } from "../ChatProxy";
import type { ChatState } from "../chatState";
import { createMarkdownRenderer } from "../markdown";
import { LocalCopyInfo } from "./LocalCopyInfo";
import { MessageInput } from "./MessageInput";
import { MessagesList } from "./MessagesList";
import { UsersList } from "./UsersList";

export interface ChatBoxProps {
  proxy: ChatProxy;
  room: string;
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

export function ChatBox({ proxy, room }: ChatBoxProps): React.ReactElement {
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

  const onClearLocalCopy = React.useCallback(() => void proxy.clearLocalCopy(), [proxy]);

  return (
    <div className={`nbchat nbchat-phase-${state.phase}`}>
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
          <MessageInput onSend={onSend} disabledReason={state.cannotSend} maxBytes={state.maxMessageBytes} />
          <LocalCopyInfo stats={state.localCopy ?? null} onClear={onClearLocalCopy} />
        </div>
        <UsersList users={state.users} selfId={state.selfId} />
      </div>
    </div>
  );
}
