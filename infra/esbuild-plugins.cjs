// esbuild plugins of `serverless package` (custom.esbuild.plugins in serverless.yml).
const path = require('node:path');

// Code splitting puts what a function loads with import() into chunks. serverless-esbuild builds
// every function into one output folder and zips, per function, everything there except the
// other functions' bundles: files named `<other bundle>.*`. Naming a function's chunk folder
// after its bundle (functions/health-check.chunks/...) keeps each zip to its own chunks.
const chunksPerFunction = {
  name: 'chunks-per-function',
  setup(build) {
    const entries = build.initialOptions.entryPoints;
    const entry = Array.isArray(entries) && entries.length === 1 ? String(entries[0]) : undefined;
    if (!entry || !build.initialOptions.splitting) return;
    const base = path.basename(entry, path.extname(entry));
    build.initialOptions.chunkNames = `${base}.chunks/[name]-[hash]`;
  },
};

module.exports = [chunksPerFunction];
