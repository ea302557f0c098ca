// A user's avatar: their image when the server vouches for it, else initials in their colour.

import * as React from "react";
import type { Identity } from "../protocol";

/** CSS colours we accept from an identity: hex, rgb()/hsl(), or a JupyterLab variable. */
const SAFE_COLOR = /^(#[0-9a-f]{3,8}|(rgb|hsl)a?\([0-9.,%\s/]+\)|var\(--jp-[a-z0-9-]+\))$/i;

export function safeColor(color: string | null): string | undefined {
  return color !== null && SAFE_COLOR.test(color.trim()) ? color.trim() : undefined;
}

/** JupyterLab's collaborator palette, for users the server gave no colour (anonymous users). */
const PALETTE_SIZE = 7;

function paletteColor(username: string): string {
  let hash = 0;
  for (let i = 0; i < username.length; i += 1) hash = (hash * 31 + username.charCodeAt(i)) >>> 0;
  return `var(--jp-collaborator-color${(hash % PALETTE_SIZE) + 1})`;
}

export function userColor(user: Identity): string {
  return safeColor(user.color) ?? paletteColor(user.username);
}

export function initialsOf(user: Identity): string {
  if (user.initials) return user.initials.slice(0, 2);
  const name = user.display_name || user.name || user.username || "?";
  const words = name.split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

export interface AvatarProps {
  user: Identity;
  /** Only pass an image URL that came from the server's presence, never one a peer relayed. */
  imageUrl?: string | null;
  size?: "small" | "normal";
}

export function Avatar({ user, imageUrl, size = "normal" }: AvatarProps): React.ReactElement {
  const [broken, setBroken] = React.useState(false);
  const className = `nbchat-avatar nbchat-avatar-${size}`;
  if (imageUrl && !broken && /^https?:|^\//.test(imageUrl)) {
    return <img className={className} src={imageUrl} alt="" onError={() => setBroken(true)} />;
  }
  return (
    <span className={className} style={{ backgroundColor: userColor(user) }} aria-hidden="true">
      {initialsOf(user)}
    </span>
  );
}
