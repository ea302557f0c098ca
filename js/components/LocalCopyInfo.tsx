// A footer line: how much of the room this computer keeps (IndexedDB), and a button to clear it.

import * as React from "react";
import { type LocalCopyStats, MAX_STORED_MESSAGES } from "../storage";

export interface LocalCopyInfoProps {
  stats: LocalCopyStats | null;
  onClear(): void;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function LocalCopyInfoView({ stats, onClear }: LocalCopyInfoProps): React.ReactElement | null {
  if (stats === null) return null;
  const count = stats.messages.toLocaleString("en-US");
  return (
    <div className="nbchat-local-copy" role="group" aria-label="Local copy">
      <span
        className="nbchat-local-copy-text"
        title={`This room's messages kept in this browser (IndexedDB), so a reload shows them before any peer answers; the newest ${MAX_STORED_MESSAGES.toLocaleString("en-US")} are kept. Others keep their own copies.`}
      >
        Stored on this computer: {count} {stats.messages === 1 ? "message" : "messages"} · {formatBytes(stats.bytes)}
      </span>
      <button
        type="button"
        className="nbchat-local-copy-clear"
        onClick={onClear}
        disabled={stats.messages === 0}
        title="Delete this room's messages from this browser's storage (peers keep theirs)"
      >
        Clear
      </button>
    </div>
  );
}

/** Re-rendered only when the stats change (number formatting is not free on every message). */
export const LocalCopyInfo = React.memo(LocalCopyInfoView);
