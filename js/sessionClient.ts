// Asks our Jupyter server for the room's session config and a peer id, as a script must.

import { type SessionConfig, parseSessionConfig } from "./core/session";
import type { PageInfo } from "./jupyterPage";

/** Our Jupyter server answered a chat request with an error status; the message says why in
 *  words and what the user can do. */
export class RequestRefused extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    const why = detail.trim().replace(/[.\s]+$/, "");
    let advice = "";
    if ((status === 401 || status === 403) && (why === "" || /authenticat|forbidden|xsrf|log ?in/i.test(why))) {
      advice = "reload the page; if that does not help, log in to Jupyter again";
    } else if (status === 404) {
      advice = "is the nbchat server extension enabled (jupyter server extension list)?";
    } else if (status >= 500) {
      advice = "see the Jupyter server's log";
    }
    super(`the Jupyter server refused the chat's request (${status})${why ? `: ${why}` : ""}${advice ? ` — ${advice}` : ""}`);
    this.name = "RequestRefused";
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SessionClient {
  constructor(
    private readonly page: PageInfo,
    private readonly fetchFn: typeof fetch,
  ) {}

  /** The room's session config and a fresh peer id. Throws RequestRefused or a network error. */
  async join(room: string): Promise<{ session: SessionConfig; peerId: string }> {
    const session = parseSessionConfig(
      await this.request(`${this.page.baseUrl}nbchat/session?room=${encodeURIComponent(room)}`).then((r) => r.json()),
    );
    // We ask for our id ourselves rather than let peerjs do it: its fetch carries no XSRF
    // token, and a JupyterHub single-user server refuses cookie auth on such a request.
    const peerId = (await this.request(`${session.path}${encodeURIComponent(session.key)}/id`).then((r) => r.text())).trim();
    return { session, peerId };
  }

  /** The server's certificate that public key `key` is our peer `peerId` (signed rooms). */
  async certificate(session: SessionConfig, peerId: string, key: string): Promise<unknown> {
    const query = `id=${encodeURIComponent(peerId)}&pk=${encodeURIComponent(key)}`;
    return (await this.request(`${session.path}${encodeURIComponent(session.key)}/cert?${query}`)).json();
  }

  /** GET from our Jupyter server with what it requires of a script's request (the `_xsrf`
   *  token and the login cookie); a refusal becomes a RequestRefused that says why. */
  private async request(url: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.page.xsrfToken !== null) headers["X-XSRFToken"] = this.page.xsrfToken;
    const response = await this.fetchFn(url, { credentials: "same-origin", headers });
    if (response.ok) return response;
    let detail = response.statusText;
    try {
      const body: unknown = await response.json();
      if (typeof body === "object" && body !== null && "message" in body) detail = String(body.message);
    } catch {
      // Not JSON (a proxy's error page): the status line is the best we have.
    }
    throw new RequestRefused(response.status, detail);
  }
}
