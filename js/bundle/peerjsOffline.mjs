// An esbuild plugin that takes peerjs's built-in internet endpoints out of the bundle.
//
// peerjs 1.5 probes browser support when its module loads (`util.supports`) by
// constructing an RTCPeerConnection with its DEFAULT_CONFIG: Google's public STUN and
// peerjs.com's public TURN. Every page that loads the widget would hand those hosts to
// the browser before nbchat passes its own config, so a chat that is configured with no
// ICE servers (the default) would still name off-host servers. We rewrite peerjs's
// module text at build time instead of forking it: the defaults become "no ICE servers"
// and the cloud signaling host a name that can never resolve (RFC 2606 `.invalid`).
// Each rewrite must match exactly once, so a peerjs upgrade that moves the text fails
// the build instead of silently shipping the defaults again.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

export const REWRITES = [
  {
    what: "DEFAULT_CONFIG's public STUN/TURN servers",
    find: /(const \$\w+\$var\$DEFAULT_CONFIG = \{\s*iceServers: )\[[\s\S]*?\](,\s*sdpSemantics)/,
    replace: "$1[]$2",
  },
  {
    what: "the PeerJS cloud signaling host",
    find: /this\.CLOUD_HOST = "0\.peerjs\.com"/,
    replace: 'this.CLOUD_HOST = "peerjs-cloud.invalid"',
  },
  {
    what: "the PeerJS cloud's contact address in an error message",
    find: /You can email team@peerjs\.com to enable peer listing for your API key\./,
    replace: "Peer listing is not enabled on this server.",
  },
];

/** peerjs's module text with every rewrite applied once; throws if one does not match. */
export function rewritePeerjs(source) {
  let text = source;
  for (const { what, find, replace } of REWRITES) {
    const matches = text.match(new RegExp(find.source, "g")) ?? [];
    if (matches.length !== 1) {
      throw new Error(
        `peerjsOffline: expected 1 match for ${what}, found ${matches.length}; ` +
          "has peerjs changed? Update js/build/peerjsOffline.mjs.",
      );
    }
    text = text.replace(find, replace);
  }
  return text;
}

/** The text of the peerjs module the widget bundles (for tests). */
export async function readPeerjsModule() {
  const main = createRequire(import.meta.url).resolve("peerjs"); // …/dist/bundler.cjs
  return readFile(main.replace(/bundler\.cjs$/, "bundler.mjs"), "utf8");
}

export const peerjsOffline = {
  name: "peerjs-offline",
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]peerjs[\\/]dist[\\/]bundler\.mjs$/ }, async (args) => ({
      contents: rewritePeerjs(await readFile(args.path, "utf8")),
      loader: "js",
    }));
  },
};
