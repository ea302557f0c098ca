// Browser notifications when the reader is mentioned while the tab is hidden. Opt-in only:
// the permission prompt comes from the user's click on the bell, never on load.

import * as React from "react";
import type { ListedMessage } from "../chatState";
import { displayName } from "../chatState";
import { findMentions } from "../core/mentions";

const KEY = "nbchat-notify-mentions";

type Permission = "default" | "granted" | "denied" | "unsupported";

function permission(): Permission {
  return typeof Notification === "undefined" ? "unsupported" : (Notification.permission as Permission);
}

function stored(): boolean {
  try {
    return globalThis.localStorage?.getItem(KEY) === "1";
  } catch {
    return false;
  }
}

function store(on: boolean): void {
  try {
    globalThis.localStorage?.setItem(KEY, on ? "1" : "0");
  } catch {
    // storage may be off: the choice lasts for this page only
  }
}

export interface MentionNotifications {
  permission: Permission;
  enabled: boolean;
  /** The bell was clicked: ask for permission (first time) or toggle. */
  toggle(): void;
}

/** Notify of new messages from others that mention `self` while the tab is hidden. */
export function useMentionNotifications(
  messages: readonly ListedMessage[],
  selfId: string | null,
  self: string | null,
  onOpen: (id: string) => void,
): MentionNotifications {
  const [perm, setPerm] = React.useState<Permission>(permission);
  const [enabled, setEnabled] = React.useState(() => stored() && permission() === "granted");
  const seen = React.useRef<string | undefined>(undefined);
  const openRef = React.useRef(onOpen);
  openRef.current = onOpen;

  // A layout effect: see useCopyButtons (ChatMessage.tsx).
  React.useLayoutEffect(() => {
    const last = messages[messages.length - 1]?.id;
    const since = seen.current;
    seen.current = last;
    if (since === undefined || !enabled || self === null || permission() !== "granted") return;
    if (typeof document === "undefined" || document.visibilityState !== "hidden") return;
    for (let i = messages.length - 1, n = 0; i >= 0 && messages[i].id !== since && n < 50; i -= 1, n += 1) {
      const message = messages[i];
      if (message.author === selfId || message.deleted === true) continue;
      if (findMentions(message.text, [self]).length === 0) continue;
      // The system keeps notifications (a notification centre): nothing said off the record.
      const offRecord = message.off_record === true;
      const notification = new Notification(`${displayName(message.user)} mentioned you`, {
        body: offRecord ? "Off the record: open the chat to read it" : message.text.slice(0, 160),
        tag: message.id,
      });
      notification.onclick = () => {
        window.focus();
        openRef.current(message.id);
        notification.close();
      };
    }
  }, [messages, selfId, self, enabled]);

  const toggle = React.useCallback(() => {
    const now = permission();
    if (now === "granted") {
      setEnabled((on) => {
        store(!on);
        return !on;
      });
    } else if (now === "default") {
      void Notification.requestPermission().then((answer) => {
        setPerm(answer as Permission);
        if (answer === "granted") {
          store(true);
          setEnabled(true);
        }
      });
    }
    setPerm(now);
  }, []);
  return { permission: perm, enabled, toggle };
}
