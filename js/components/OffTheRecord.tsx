// Off the record (core/edits): the header's switch, the banner everyone in the room sees
// while the room is off the record, and the log's line for each switch.

import * as React from "react";
import { type OffRecord, recordLine } from "../chatState";
import type { ChatMessage } from "../protocol";
import { OffRecordIcon } from "./Icons";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export interface OffRecordToggleProps {
  offRecord: OffRecord | null;
  disabled: boolean;
  onToggle: (off: boolean) => void;
}

/** The header's switch: pressed while the room is off the record. Anyone may flip it. */
function OffRecordToggleView({ offRecord, disabled, onToggle }: OffRecordToggleProps): React.ReactElement {
  const off = offRecord !== null;
  return (
    <button
      type="button"
      className={`nbchat-action nbchat-record-toggle${off ? " nbchat-record-toggle-off" : ""}`}
      aria-label="Off the record"
      aria-pressed={off}
      disabled={disabled}
      title={
        off
          ? "Off the record: nothing is kept on any computer or in the notebook (click to put the chat back on the record)"
          : "Take the chat off the record for everyone: messages are shown but kept nowhere"
      }
      onClick={() => onToggle(!off)}
    >
      <OffRecordIcon />
    </button>
  );
}

/** What everyone in the room sees while it is off the record. */
export function OffRecordBanner({ offRecord }: { offRecord: OffRecord | null }): React.ReactElement | null {
  if (offRecord === null) return null;
  return (
    <div className="nbchat-record-banner" role="status" aria-label="Off the record">
      <OffRecordIcon />
      <span>
        <strong>Off the record</strong> — {offRecord.by} turned it off at {timeFormat.format(new Date(offRecord.since))}.
        New messages are shown to the people here but kept nowhere: not on this computer, not in the notebook, not in
        exports.
      </span>
    </div>
  );
}

/** The log's line for a switch: "Ana took the chat off the record". */
export function RecordLine({ entry }: { entry: ChatMessage }): React.ReactElement {
  const when = new Date(entry.time);
  return (
    <div
      role="article"
      aria-label={recordLine(entry)}
      tabIndex={-1}
      className={`nbchat-record-line${entry.on === true ? "" : " nbchat-record-line-off"}`}
      data-message-id={entry.id}
    >
      <OffRecordIcon />
      <span>{recordLine(entry)}</span>
      <time dateTime={when.toISOString()}>{timeFormat.format(when)}</time>
    </div>
  );
}

export const OffRecordToggle = React.memo(OffRecordToggleView);
