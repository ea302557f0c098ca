// Builds the widget bundle (src/nbchat/static/widget.js): `npm run build`, or
// `npm run dev` to rebuild on change. hatch-jupyter-builder runs `npm run build`.
import * as esbuild from "esbuild";
import { widgetBuildOptions } from "./bundle/options.mjs";

if (process.argv.includes("--watch")) {
  await (await esbuild.context(widgetBuildOptions({ watch: true }))).watch();
} else {
  await esbuild.build(widgetBuildOptions());
}
