// Bundle the agents-frontend test app (app.jsx) into build/app.js. Run by scripts/setup.sh.
import { build } from "esbuild";

await build({
  entryPoints: ["app.jsx"],
  outdir: "build",
  bundle: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  minify: true,
  logLevel: "warning",
});
