// The widget bundle's esbuild options, shared by js/build.mjs and the bundle's tests.
import { peerjsOffline } from "./peerjsOffline.mjs";

/** @param {{ watch?: boolean }} [mode] */
export function widgetBuildOptions({ watch = false } = {}) {
  return {
    entryPoints: ["js/widget.tsx"],
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: !watch,
    outfile: "src/nbchat/static/widget.js",
    plugins: [peerjsOffline],
    logLevel: "info",
  };
}
