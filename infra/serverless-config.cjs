// Resolves the deploy-time settings of one stage for serverless.yml: config/clusters.<stage>.json
// (the clusters, bundled into every function's artifact as .build/failover-config.json) and
// config/deploy.<stage>.json (VPC, alert e-mail, secrets, keys, bus). Both are validated with the
// same zod schemas the functions use (lib/config, bundled here with esbuild), so a bad config fails
// `serverless package` and `serverless deploy` naming the key, before anything reaches AWS.
// `package` falls back to the examples (CI works offline); `deploy` refuses them.
const path = require('node:path');
const Module = require('node:module');

const root = path.join(__dirname, '..');

function loadResolver() {
  const esbuild = require('esbuild');
  const entry = path.join(root, 'lib/config/deploy-settings.ts');
  const out = esbuild.buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  const m = new Module(entry);
  m.filename = entry;
  m.paths = Module._nodeModulePaths(root);
  m._compile(out.outputFiles[0].text, entry);
  return m.exports;
}

// `serverless deploy [function]` is strict; package, print, invoke, info ... are not.
function command() {
  const words = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  return words.includes('deploy') ? 'deploy' : (words[0] ?? '');
}

module.exports = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  const { resolveDeploySettings } = loadResolver();
  try {
    return resolveDeploySettings({
      root,
      stage,
      command: command(),
      ...(process.env.FAILOVER_CONFIG_DIR
        ? { configDir: path.resolve(process.env.FAILOVER_CONFIG_DIR) }
        : {}),
    });
  } catch (err) {
    // Serverless prints the message; the name tells ConfigError from a bug.
    throw new Error(`${err.name}: ${err.message}`);
  }
};
