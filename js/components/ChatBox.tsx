// The chat: status line, messages, message box and the users column. State comes from ChatProxy.

import * as React from "react";
import { flushSync } from "react-dom";
import type { ChatProxy } from "../ChatProxy";
import { type ChatState, type ListedMessage, type Quote, displayName } from "../chatState";
import type { Presence } from "../protocol";
import { createMarkdownRenderer } from "../markdown";
import { FilesContext, SaveContext } from "./FileCard";
import { LocalCopyInfo } from "./LocalCopyInfo";
import { ExportMenu, SearchBar, searchMessages } from "./ChatTools";
import { ActionsContext, type ChatActions, SearchContext, editable } from "./MessageActions";
import { MessageInput } from "./MessageInput";
import { BellIcon, SearchIcon } from "./Icons";
import { useMentionNotifications } from "./notify";
import { MessagesList } from "./MessagesList";
import { OffRecordBanner, OffRecordToggle } from "./OffTheRecord";
import { UsersList } from "./UsersList";

export interface ChatBoxProps {
  proxy: ChatProxy;
  room: string;
  /** Saves a received file next to the notebook (through the widget's kernel), if there is one. */
  saveFile?: ((name: string, bytes: Uint8Array) => Promise<string>) | null;
}

/**
 * The proxy's state, rendered synchronously when it changes (ChatProxy already batches its
 * changes into one emit, in a microtask or an animation frame). Not useSyncExternalStore:
 * that queues a passive effect on every update, and a commit with one schedules a task for
 * it (a postMessage, ~0.1 ms of each live message's way to the DOM).
 */
export function useChatState(proxy: Pick<ChatProxy, "state" | "subscribe">): ChatState {
  const [state, setState] = React.useState(() => proxy.state);
  React.useLayoutEffect(() => {
    let subscribed = false;
    const off = proxy.subscribe((next) => {
      // The first call comes from subscribe() itself, inside this effect: a plain update.
      if (subscribed) flushSync(() => setState(next));
      else setState(next);
    });
    subscribed = true;
    return off;
  }, [proxy]);
  return state;
}

/** While the tab is hidden, "(N) " before the document title for N new messages from others. */
function useTitleBadge(messages: readonly ListedMessage[], selfId: string | null): void {
  const hiddenAt = React.useRef<{ id: string | undefined; title: string } | null>(null);
  const last = messages[messages.length - 1];
  const lastRef = React.useRef(last);
  lastRef.current = last;
  React.useEffect(() => {
    if (typeof document === "undefined") return;
    const onVisibility = (): void => {
      if (document.visibilityState === "hidden") {
        hiddenAt.current = { id: lastRef.current?.id, title: document.title.replace(/^\(\d+\+?\) /, "") };
      } else if (hiddenAt.current !== null) {
        document.title = document.title.replace(/^\(\d+\+?\) /, "");
        hiddenAt.current = null;
      }
    };
    onVisibility();
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      document.removeEventListener("visibilitychange", onVisibility);
      if (hiddenAt.current !== null) document.title = document.title.replace(/^\(\d+\+?\) /, "");
    };
  }, []);
  // A layout effect: see useCopyButtons (ChatMessage.tsx).
  React.useLayoutEffect(() => {
    const hidden = hiddenAt.current;
    if (hidden === null) return;
    let count = 0;
    for (let i = messages.length - 1; i >= 0 && messages[i].id !== hidden.id && count < 100; i -= 1) {
      if (messages[i].author !== selfId) count += 1;
    }
    const base = document.title.replace(/^\(\d+\+?\) /, "");
    document.title = count > 0 ? `(${count >= 100 ? "99+" : count}) ${base}` : base;
  }, [messages, selfId]);
}

/** `users` as it was while it holds the same people (the state makes a new array each render),
 *  so what shows them (the users column, avatars, mention candidates) skips a new message. */
function useStableUsers(users: readonly Presence[]): readonly Presence[] {
  const held = React.useRef(users);
  const before = held.current;
  const same =
    before.length === users.length &&
    users.every((u, i) => u.peer_id === before[i].peer_id && u.user === before[i].user);
  if (!same) held.current = users;
  return held.current;
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
  const [editing, setEditing] = React.useState<{ id: string; text: string } | null>(null);
  const [replying, setReplying] = React.useState<Quote | null>(null);
  const jumpRef = React.useRef<((id: string, focus?: boolean) => void) | null>(null);
  const [searching, setSearching] = React.useState(false);
  const [query, setQuery] = React.useState("");
  const deferredQuery = React.useDeferredValue(searching ? query.trim() : "");
  const matches = React.useMemo(() => searchMessages(state.messages, deferredQuery), [state.messages, deferredQuery]);
  const matchesRef = React.useRef<string[]>([]);
  // A new message that does not match keeps the list (the search box does not jump again).
  if (matches.join("\n") !== matchesRef.current.join("\n")) matchesRef.current = matches;
  const stableMatches = matchesRef.current;
  useTitleBadge(state.messages, state.selfId);
  const users = useStableUsers(state.users);
  // An export holds what is kept: no switch lines, nothing said off the record. Filtered
  // when the menu asks, not on every message.
  const exported = React.useCallback(
    () => proxy.state.messages.filter((m) => m.kind === undefined && m.off_record !== true),
    [proxy],
  );
  const notifications = useMentionNotifications(state.messages, state.selfId, state.self?.username ?? null, (id) =>
    jumpRef.current?.(id),
  );

  const attempt = React.useCallback((action: () => unknown) => {
    try {
      action();
      setSendError(null);
    } catch (error) {
      setSendError(error instanceof Error ? error.message : String(error));
    }
  }, []);

  const onSend = React.useCallback(
    (text: string) => {
      attempt(() => {
        if (replying !== null) proxy.reply(replying.id, text);
        else proxy.send(text);
      });
      setReplying(null);
    },
    [proxy, replying, attempt],
  );

  const usersRef = React.useRef(users);
  usersRef.current = users;
  const selfName = state.self?.username ?? null;
  const actions = React.useMemo<ChatActions>(
    () => ({
      self: selfName,
      react: (id, emoji, on) => attempt(() => proxy.react(id, emoji, on)),
      reply: (message) => {
        setEditing(null);
        setReplying({
          id: message.id,
          name: displayName(message.user),
          line: message.text.split("\n", 1)[0],
          deleted: false,
        });
      },
      edit: (message) => {
        setReplying(null);
        setEditing({ id: message.id, text: message.text });
      },
      remove: (id) => attempt(() => proxy.remove(id)),
      jumpTo: (id) => jumpRef.current?.(id),
      nameOf: (username) => {
        const found = usersRef.current.find((u) => u.user.username === username);
        return found !== undefined ? displayName(found.user) : username;
      },
    }),
    [proxy, selfName, attempt],
  );
  const onEditLast = React.useCallback(() => {
    const messages = proxy.state.messages;
    for (let i = messages.length - 1; i >= 0; i -= 1) {
      const message = messages[i];
      if (message.kind === undefined && message.user.username === selfName && editable(message)) {
        actions.edit(message);
        return;
      }
    }
  }, [proxy, selfName, actions]);
  const people = React.useMemo(() => {
    const seen = new Map(users.map((u) => [u.user.username, u.user]));
    if (selfName !== null) seen.delete(selfName);
    return [...seen.values()];
  }, [users, selfName]);
  const onEdit = React.useCallback(
    (id: string, text: string) => {
      attempt(() => proxy.edit(id, text));
      setEditing(null);
    },
    [proxy, attempt],
  );
  const onCancelEdit = React.useCallback(() => setEditing(null), []);
  const onCancelReply = React.useCallback(() => setReplying(null), []);
  const onTyping = React.useCallback((typing: boolean) => proxy.setTyping(typing), [proxy]);
  const onToggleRecord = React.useCallback((off: boolean) => attempt(() => proxy.setOffTheRecord(off)), [proxy, attempt]);

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
    <ActionsContext.Provider value={actions}>
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
        <span className="nbchat-tools">
          <button
            type="button"
            className="nbchat-action"
            aria-label="Search messages"
            aria-pressed={searching}
            title="Search messages"
            onClick={() => setSearching((s) => !s)}
          >
            <SearchIcon />
          </button>
          <OffRecordToggle
            offRecord={state.offRecord ?? null}
            disabled={state.cannotSend !== null}
            onToggle={onToggleRecord}
          />
          <ExportMenu room={room} messages={exported} history={proxy} />
          {notifications.permission !== "unsupported" && (
            <button
              type="button"
              className="nbchat-action"
              aria-label="Notify me when mentioned"
              aria-pressed={notifications.enabled}
              disabled={notifications.permission === "denied"}
              title={
                notifications.permission === "denied"
                  ? "Notifications are blocked for this site (browser settings)"
                  : notifications.enabled
                    ? "Mentions of you notify while this tab is hidden (click to stop)"
                    : "Notify me when someone mentions me while this tab is hidden"
              }
              onClick={notifications.toggle}
            >
              <BellIcon />
            </button>
          )}
        </span>
        <span className="nbchat-status" role="status" aria-label="Chat status">
          <span className="nbchat-status-dot" aria-hidden="true" />
          {state.status}
        </span>
      </div>
      {searching && (
        <SearchBar
          query={query}
          onQuery={setQuery}
          matches={stableMatches}
          onJump={(id) => jumpRef.current?.(id, false)}
          onClose={() => {
            setSearching(false);
            setQuery("");
          }}
        />
      )}
      <OffRecordBanner offRecord={state.offRecord ?? null} />
      {state.notice !== null && (
        <div className="nbchat-notice" role="status" aria-label="Chat notice">
          {state.notice}
        </div>
      )}
      <div className="nbchat-body">
        <div className="nbchat-main">
          <SearchContext.Provider value={deferredQuery}>
            <MessagesList
              messages={state.messages}
              users={users}
              selfId={state.selfId}
              markdown={markdown}
              jumpRef={jumpRef}
            />
          </SearchContext.Provider>
          {sendError !== null && (
            <div className="nbchat-input-reason" role="alert">
              {sendError}
            </div>
          )}
          <div className="nbchat-typing" role="status" aria-label="Who is typing">
            {state.typing}
          </div>
          <MessageInput
            onSend={onSend}
            onFiles={onFiles}
            disabledReason={state.cannotSend}
            maxBytes={state.maxMessageBytes}
            editing={editing}
            onEdit={onEdit}
            onCancelEdit={onCancelEdit}
            onEditLast={onEditLast}
            replying={replying}
            onCancelReply={onCancelReply}
            onTyping={onTyping}
            people={people}
          />
          <LocalCopyInfo stats={state.localCopy ?? null} onClear={onClearLocalCopy} />
        </div>
        <UsersList users={users} selfId={state.selfId} />
      </div>
      {dragging && (
        <div className="nbchat-drop" aria-hidden="true">
          Drop to share peer to peer
        </div>
      )}
    </div>
    </SaveContext.Provider>
    </FilesContext.Provider>
    </ActionsContext.Provider>
  );
}
