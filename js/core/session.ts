// The session config (docs/protocol.md §1, `GET nbchat/session`): one definition for the server
// that builds it and the peers that read it. Pure; mirrors src/nbchat/core/session.py, pinned by
// tests/fixtures/session.json. Times are milliseconds, as on the wire.

import { type Identity, ROOM_KEY_RE } from "../protocol";
import { MAX_MESSAGE_BYTES } from "./frames";
import { InvalidMessage, normalizeIdentity } from "./msglog";

export const ICE_TRANSPORT_POLICIES = ["all", "relay"] as const;
/** What a client assumes for a key the server left out (an older server). */
const DEFAULT_PING_INTERVAL = 5_000;
const DEFAULT_ALIVE_TIMEOUT = 60_000;

/** A session config that is not what an nbchat server sends. */
export class InvalidSession extends Error {}

/** What a browser or Python peer needs to join a room. */
export interface SessionConfig {
  room: string;
  key: string;
  /** Where the signaling endpoints are, ending in `/`. */
  path: string;
  ice_servers: RTCIceServer[];
  /** "relay": every peer uses TURN-relayed candidates only. */
  ice_transport_policy: RTCIceTransportPolicy;
  user: Identity;
  /** ms between HEARTBEATs. */
  ping_interval: number;
  /** ms of silence before the server evicts a peer. */
  alive_timeout: number;
  max_message_bytes: number;
  /** Who can join this room, in words ("everyone signed in to this hub"). */
  audience?: string;
  /** The shared signaling service a JupyterHub single-user server relays to. */
  service?: string;
  /** The server's public keys (base64url Ed25519) that sign peers' certificates. */
  server_keys?: string[];
  /** ms between a peer's repair rounds (core/sync); absent: ANTI_ENTROPY_MS. */
  repair_interval?: number;
  version: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// A key that is absent takes its default; one that is null is an error (as in Python).
function positive(data: Record<string, unknown>, name: string, fallback: number): number {
  const value = data[name] === undefined ? fallback : data[name];
  if (typeof value !== "number") throw new InvalidSession(`${name} must be a number`);
  if (!(Number.isFinite(value) && value > 0)) throw new InvalidSession(`${name} must be positive`);
  return value;
}

function optionalText(data: Record<string, unknown>, name: string): string | undefined {
  const value = data[name] ?? undefined;
  if (value !== undefined && typeof value !== "string") throw new InvalidSession(`${name} must be a string`);
  return value;
}

/** Validate a session config as a server sent it; throws InvalidSession. */
export function parseSessionConfig(data: unknown): SessionConfig {
  if (!isRecord(data)) throw new InvalidSession("session config is not a JSON object");
  const { room, key, path } = data;
  if (typeof room !== "string") throw new InvalidSession("room must be a string");
  if (typeof key !== "string" || !ROOM_KEY_RE.test(key)) throw new InvalidSession("key is not a room key");
  if (typeof path !== "string" || !path.startsWith("/")) throw new InvalidSession("path must start with /");
  const ice = data.ice_servers ?? [];
  if (!Array.isArray(ice) || !ice.every(isRecord)) throw new InvalidSession("ice_servers must be a list of objects");
  const policy = data.ice_transport_policy === undefined ? "all" : data.ice_transport_policy;
  if (policy !== "all" && policy !== "relay") throw new InvalidSession("ice_transport_policy must be all or relay");
  let user: Identity;
  try {
    user = normalizeIdentity(data.user);
  } catch (error) {
    if (error instanceof InvalidMessage) throw new InvalidSession(error.message);
    throw error;
  }
  const maxBytes = data.max_message_bytes === undefined ? MAX_MESSAGE_BYTES : data.max_message_bytes;
  if (typeof maxBytes !== "number" || !Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new InvalidSession("max_message_bytes must be a positive integer");
  }
  const version = data.version === undefined ? "" : data.version;
  if (typeof version !== "string") throw new InvalidSession("version must be a string");
  const serverKeys = data.server_keys === undefined ? [] : data.server_keys;
  if (!Array.isArray(serverKeys) || !serverKeys.every((k) => typeof k === "string")) {
    throw new InvalidSession("server_keys must be a list of strings");
  }
  const config: SessionConfig = {
    room,
    key,
    path: path.endsWith("/") ? path : `${path}/`,
    ice_servers: ice as unknown as RTCIceServer[],
    ice_transport_policy: policy,
    user,
    ping_interval: positive(data, "ping_interval", DEFAULT_PING_INTERVAL),
    alive_timeout: positive(data, "alive_timeout", DEFAULT_ALIVE_TIMEOUT),
    max_message_bytes: maxBytes,
    version,
  };
  const audience = optionalText(data, "audience");
  if (audience !== undefined) config.audience = audience;
  const service = optionalText(data, "service");
  if (service !== undefined) config.service = service;
  if (serverKeys.length > 0) config.server_keys = serverKeys as string[];
  if (data.repair_interval !== undefined) config.repair_interval = positive(data, "repair_interval", 0);
  return config;
}
