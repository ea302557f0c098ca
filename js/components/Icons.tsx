// Small inline icons (ours, not from messages): emoji need a font a headless or minimal
// system may lack, and JupyterLab's own icons are not part of the widget's public surface.

import * as React from "react";

export function PaperclipIcon({ size = 16 }: { size?: number }): React.ReactElement {
  return (
    <svg width={size} height={size} viewBox="0 0 24 24" aria-hidden="true" focusable="false" className="nbchat-icon">
      <path
        d="M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5"
        fill="none"
        stroke="currentColor"
        strokeWidth="1.8"
        strokeLinecap="round"
      />
    </svg>
  );
}

function StrokeIcon({ size = 15, children }: { size?: number; children: React.ReactNode }): React.ReactElement {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 24 24"
      aria-hidden="true"
      focusable="false"
      className="nbchat-icon"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      {children}
    </svg>
  );
}

export function ReactIcon(): React.ReactElement {
  return (
    <StrokeIcon>
      <path d="M20.5 11.5a8.5 8.5 0 1 1-8-8.49" />
      <path d="M8.5 14.5a4.5 4.5 0 0 0 7 0" />
      <path d="M9 9.5h.01M15 9.5h.01" strokeWidth="2.6" />
      <path d="M19 2v6M16 5h6" />
    </StrokeIcon>
  );
}

/** An eye struck through: off the record. */
export function OffRecordIcon(): React.ReactElement {
  return (
    <StrokeIcon>
      <path d="M2.5 12s3.5-6.5 9.5-6.5 9.5 6.5 9.5 6.5-3.5 6.5-9.5 6.5S2.5 12 2.5 12Z" />
      <circle cx="12" cy="12" r="2.8" />
      <path d="M4 20 20 4" />
    </StrokeIcon>
  );
}

export function ReplyIcon(): React.ReactElement {
  return (
    <StrokeIcon>
      <path d="M9 14 4 9l5-5" />
      <path d="M4 9h10.5a5.5 5.5 0 0 1 0 11H11" />
    </StrokeIcon>
  );
}

export function EditIcon(): React.ReactElement {
  return (
    <StrokeIcon>
      <path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L8 18l-4 1 1-4Z" />
    </StrokeIcon>
  );
}

export function TrashIcon(): React.ReactElement {
  return (
    <StrokeIcon>
      <path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3" />
    </StrokeIcon>
  );
}

export const SearchIcon = React.memo(function SearchIcon(): React.ReactElement {
  return (
    <StrokeIcon size={14}>
      <circle cx="10.5" cy="10.5" r="6.5" />
      <path d="m15.5 15.5 5 5" />
    </StrokeIcon>
  );
});

export function DownloadIcon(): React.ReactElement {
  return (
    <StrokeIcon size={14}>
      <path d="M12 4v11M7 10.5l5 5 5-5M5 20h14" />
    </StrokeIcon>
  );
}

export const BellIcon = React.memo(function BellIcon(): React.ReactElement {
  return (
    <StrokeIcon size={14}>
      <path d="M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15Z" />
      <path d="M10 20.5a2 2 0 0 0 4 0" />
    </StrokeIcon>
  );
});
