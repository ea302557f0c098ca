// What the widget learns from the Jupyter page it runs in: base URL, WebSocket origin, XSRF token.

export interface PageInfo {
  /** Jupyter's base URL, always ending in "/" (for example "/user/ana/"). */
  baseUrl: string;
  /** "ws://host:port" or "wss://host:port", no path. */
  wsOrigin: string;
  /** The `_xsrf` cookie, if the server set one. */
  xsrfToken: string | null;
  secure: boolean;
  hostname: string;
  port: number;
}

function readConfigData(doc: Document): Record<string, unknown> {
  const element = doc.getElementById("jupyter-config-data");
  if (element === null || element.textContent === null) return {};
  try {
    const parsed: unknown = JSON.parse(element.textContent);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch (error) {
    console.warn("nbchat: #jupyter-config-data is not JSON; assuming base URL '/'", error);
    return {};
  }
}

function readCookie(doc: Document, name: string): string | null {
  for (const part of doc.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

export function pageInfo(doc: Document = document, location: Location = window.location): PageInfo {
  const config = readConfigData(doc);
  let baseUrl = typeof config.baseUrl === "string" && config.baseUrl !== "" ? config.baseUrl : "/";
  if (!baseUrl.endsWith("/")) baseUrl += "/";
  const secure = location.protocol === "https:";
  let wsOrigin = `${secure ? "wss" : "ws"}://${location.host}`;
  if (typeof config.wsUrl === "string" && config.wsUrl !== "") {
    try {
      const ws = new URL(config.wsUrl, location.href);
      wsOrigin = `${ws.protocol}//${ws.host}`;
    } catch (error) {
      console.warn("nbchat: ignoring unparsable wsUrl in page config", error);
    }
  }
  const port = location.port !== "" ? Number(location.port) : secure ? 443 : 80;
  return {
    baseUrl,
    wsOrigin,
    xsrfToken: readCookie(doc, "_xsrf"),
    secure,
    hostname: location.hostname,
    port,
  };
}
