// What a reader can do to a message (react, reply, edit, delete), reached by mouse (a toolbar
// on hover) and keyboard (the toolbar shows while focus is inside the message), and the
// reaction chips under it. Handlers come by context, so memoized rows need no new props.

import * as React from "react";
import type { Reaction } from "../core/edits";
import type { ListedMessage } from "../chatState";
import { EditIcon, ReactIcon, ReplyIcon, TrashIcon } from "./Icons";

/** The fixed emoji set offered for reactions (any emoji received is still shown). */
export const REACTIONS = ["👍", "❤️", "😄", "🎉", "👀", "✅"] as const;

export interface ChatActions {
  /** Our username (for "you reacted", mentions), or null before we know it. */
  self: string | null;
  react(id: string, emoji: string, on: boolean): void;
  reply(message: ListedMessage): void;
  edit(message: ListedMessage): void;
  remove(id: string): void;
  /** Scroll to message `id`, highlight and focus it. */
  jumpTo(id: string): void;
  /** A username as the room knows it (display name), for tooltips. */
  nameOf(username: string): string;
}

export const ActionsContext = React.createContext<ChatActions | null>(null);

/** What the search box looks for ("" for nothing): matches are marked in the messages. */
export const SearchContext = React.createContext("");

/** Whether a message's text can be edited here (file cards and rich bundles cannot). */
export function editable(message: ListedMessage): boolean {
  return message.deleted !== true && message.file === undefined && message.mime === undefined;
}

function listNames(names: readonly string[]): string {
  return names.length <= 1 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export function Reactions({ id, reactions }: { id: string; reactions: readonly Reaction[] }): React.ReactElement | null {
  const actions = React.useContext(ActionsContext);
  if (reactions.length === 0) return null;
  return (
    <div className="nbchat-reactions" role="group" aria-label="Reactions">
      {reactions.map(({ emoji, users }) => {
        const mine = actions?.self != null && users.includes(actions.self);
        const who = listNames(users.map((u) => (u === actions?.self ? "you" : actions?.nameOf(u) ?? u)));
        return (
          <button
            key={emoji}
            type="button"
            className="nbchat-reaction"
            aria-pressed={mine}
            aria-label={`${emoji} ${users.length}: ${who}${mine ? " (click to take back)" : ""}`}
            title={`${who} reacted with ${emoji}`}
            disabled={actions === null}
            onClick={() => actions?.react(id, emoji, !mine)}
          >
            <span aria-hidden="true">{emoji}</span>
            <span className="nbchat-reaction-count">{users.length}</span>
          </button>
        );
      })}
    </div>
  );
}

export function MessageToolbar({ message, name }: { message: ListedMessage; name: string }): React.ReactElement | null {
  const actions = React.useContext(ActionsContext);
  const [picking, setPicking] = React.useState(false);
  const [confirming, setConfirming] = React.useState(false);
  const pickerRef = React.useRef<HTMLDivElement>(null);
  const reactButton = React.useRef<HTMLButtonElement>(null);
  React.useEffect(() => {
    if (picking) pickerRef.current?.querySelector<HTMLButtonElement>("button")?.focus();
  }, [picking]);
  React.useEffect(() => {
    if (!confirming) return;
    const timer = setTimeout(() => setConfirming(false), 4_000);
    return () => clearTimeout(timer);
  }, [confirming]);
  if (actions === null || message.deleted === true) return null;
  const own = actions.self !== null && message.user.username === actions.self;
  const mine = (emoji: string): boolean =>
    (message.reactions ?? []).some((r) => r.emoji === emoji && actions.self !== null && r.users.includes(actions.self));
  const closePicker = (): void => {
    setPicking(false);
    reactButton.current?.focus();
  };
  const onPickerKey = (event: React.KeyboardEvent): void => {
    const items = [...(pickerRef.current?.querySelectorAll<HTMLButtonElement>("button") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLButtonElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closePicker();
    } else if (event.key === "ArrowRight" || event.key === "ArrowDown") {
      event.preventDefault();
      items[(at + 1) % items.length]?.focus();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowUp") {
      event.preventDefault();
      items[(at - 1 + items.length) % items.length]?.focus();
    }
  };
  return (
    <div
      className={`nbchat-actions${picking || confirming ? " nbchat-actions-open" : ""}`}
      role="toolbar"
      aria-label={`Actions for the message from ${name}`}
    >
      <button
        ref={reactButton}
        type="button"
        className="nbchat-action"
        aria-label="React"
        aria-haspopup="menu"
        aria-expanded={picking}
        title="React"
        onClick={() => setPicking((p) => !p)}
      >
        <ReactIcon />
      </button>
      {picking && (
        <div ref={pickerRef} className="nbchat-emoji-menu" role="menu" aria-label="Reactions" onKeyDown={onPickerKey}>
          {REACTIONS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              role="menuitemcheckbox"
              aria-checked={mine(emoji)}
              aria-label={`React with ${emoji}`}
              className="nbchat-emoji"
              onClick={() => {
                actions.react(message.id, emoji, !mine(emoji));
                closePicker();
              }}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
      <button type="button" className="nbchat-action" aria-label="Reply" title="Reply" onClick={() => actions.reply(message)}>
        <ReplyIcon />
      </button>
      {own && editable(message) && (
        <button type="button" className="nbchat-action" aria-label="Edit" title="Edit" onClick={() => actions.edit(message)}>
          <EditIcon />
        </button>
      )}
      {own && (
        <button
          type="button"
          className={`nbchat-action${confirming ? " nbchat-action-danger" : ""}`}
          aria-label={confirming ? "Confirm delete" : "Delete"}
          title={confirming ? "Click again to delete for everyone" : "Delete"}
          onClick={() => {
            if (!confirming) {
              setConfirming(true);
              return;
            }
            setConfirming(false);
            actions.remove(message.id);
          }}
        >
          {confirming ? "Delete?" : <TrashIcon />}
        </button>
      )}
    </div>
  );
}
