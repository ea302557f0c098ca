// Who is in the room right now, yourself marked "(you)".

import * as React from "react";
import type { Presence } from "../protocol";
import { Avatar } from "./Avatar";

export interface UsersListProps {
  users: readonly Presence[];
  selfId: string | null;
}

export function UsersList({ users, selfId }: UsersListProps): React.ReactElement {
  return (
    <div className="nbchat-users">
      <div className="nbchat-users-title">Online — {users.length}</div>
      <ul className="nbchat-users-list" role="list" aria-label="Users">
        {users.map(({ peer_id, user }) => {
          const name = user.display_name || user.name || user.username;
          return (
            <li key={peer_id} className="nbchat-user" title={`${name} (${user.username})`}>
              <Avatar user={user} imageUrl={user.avatar_url} size="small" />
              <span className="nbchat-user-name">{name}</span>
              {peer_id === selfId && <span className="nbchat-user-you"> (you)</span>}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
