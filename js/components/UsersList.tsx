// Who is in the room right now: one row per person, yourself marked "(you)". Someone
// connected from several places (two tabs, a notebook and a script) is still one person;
// the row says how many connections they have.

import * as React from "react";
import type { Identity, Presence } from "../protocol";
import { Avatar } from "./Avatar";

export interface UsersListProps {
  users: readonly Presence[];
  selfId: string | null;
}

export interface UserRow {
  /** Stable React key: the Jupyter username, or the peer id when there is none. */
  key: string;
  user: Identity;
  connections: number;
  isSelf: boolean;
}

/** Presence entries grouped by Jupyter user, in order of first appearance. */
export function groupByUser(users: readonly Presence[], selfId: string | null): UserRow[] {
  const rows = new Map<string, UserRow>();
  for (const { peer_id, user } of users) {
    // The server binds every peer to its Jupyter user; an empty username cannot be
    // grouped with anyone, so it stays its own row.
    const key = user.username ? `u:${user.username}` : `p:${peer_id}`;
    const row = rows.get(key);
    if (row) {
      row.connections += 1;
      row.isSelf ||= peer_id === selfId;
    } else {
      rows.set(key, { key, user, connections: 1, isSelf: peer_id === selfId });
    }
  }
  return [...rows.values()];
}

function UsersListView({ users, selfId }: UsersListProps): React.ReactElement {
  const rows = groupByUser(users, selfId);
  return (
    <div className="nbchat-users">
      <div className="nbchat-users-title">Online — {rows.length}</div>
      <ul className="nbchat-users-list" role="list" aria-label="Users">
        {rows.map(({ key, user, connections, isSelf }) => {
          const name = user.display_name || user.name || user.username;
          const where = connections > 1 ? `, connected from ${connections} places` : "";
          return (
            <li key={key} className="nbchat-user" title={`${name} (${user.username})${where}`}>
              <Avatar user={user} imageUrl={user.avatar_url} size="small" />
              <span className="nbchat-user-name">{name}</span>
              {isSelf && <span className="nbchat-user-you"> (you)</span>}
              {connections > 1 && (
                <span
                  className="nbchat-user-connections"
                  aria-label={`${connections} connections`}
                >
                  ×{connections}
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

/** Re-renders only when who is here changes (ChatBox keeps the array while it does not). */
export const UsersList = React.memo(UsersListView);
