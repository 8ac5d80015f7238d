// Resolves the deploy-time settings of one stage for serverless.yml: config/clusters.<stage>.json
// (the clusters, bundled into every function's artifact as .build/failover-config.json) and
// config/deploy.<stage>.json (VPC, alert e-mail, secrets, keys, bus, tracing). Both are validated
// with the same zod schemas the functions use (lib/config, bundled here with esbuild), so a bad
// config fails `serverless package` and `serverless deploy` naming the key, before anything reaches
// AWS. `package` falls back to the examples (CI works offline); `deploy` refuses them.
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const root = path.join(__dirname, '..');

function loadLib() {
  const esbuild = require('esbuild');
  const filename = path.join(root, 'lib/config/serverless-settings.cjs');
  const out = esbuild.buildSync({
    stdin: {
      contents: "export * from './lib/config/deploy-settings.ts'; export * from './lib/config/dashboard.ts';",
      resolveDir: root,
      sourcefile: 'serverless-settings.ts',
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  const m = new Module(filename);
  m.filename = filename;
  m.paths = Module._nodeModulePaths(root);
  m._compile(out.outputFiles[0].text, filename);
  return m.exports;
}

// `serverless deploy [function]` is strict; package, print, invoke, info ... are not.
function command() {
  const words = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  return words.includes('deploy') ? 'deploy' : (words[0] ?? '');
}

// The dashboard lists every function's log group and every alarm: read them from serverless.yml
// itself (not through the variables resolver, which would resolve this file again).
function stackShape() {
  const yaml = require('js-yaml');
  const doc = yaml.load(fs.readFileSync(path.join(root, 'serverless.yml'), 'utf8'));
  // `resources` is a list of parts serverless merges (the dashboard's own part is a variable).
  const parts = [doc.resources ?? []].flat().filter((p) => p && typeof p === 'object');
  const resources = Object.assign({}, ...parts.map((p) => p.Resources ?? {}));
  return {
    functions: Object.keys(doc.functions ?? {}),
    alarms: Object.keys(resources).filter((id) => resources[id].Type === 'AWS::CloudWatch::Alarm'),
    stateMachines: Object.values(doc.stepFunctions?.stateMachines ?? {}).map((m) => m.id),
  };
}

// The resources part of the dashboard (deploy setting `dashboard`): the dashboard and its output,
// or nothing, so a stack without it has no AWS::CloudWatch::Dashboard to pay for.
function dashboardResources(enabled, buildDashboard, service, stage) {
  if (!enabled) return {};
  const name = `${service}-${stage}`;
  return {
    Resources: {
      Dashboard: {
        Type: 'AWS::CloudWatch::Dashboard',
        Properties: {
          DashboardName: name,
          DashboardBody: buildDashboard({ prefix: name, ...stackShape() }),
        },
      },
    },
    Outputs: { DashboardName: { Value: { Ref: 'Dashboard' } } },
  };
}

// Serverless resolves the file once per reference: print the warnings once.
let warned = false;

module.exports = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  const service = await resolveVariable('self:service');
  const { resolveDeploySettings, buildDashboard } = loadLib();
  try {
    const settings = resolveDeploySettings({
      root,
      stage,
      command: command(),
      ...(process.env.FAILOVER_CONFIG_DIR
        ? { configDir: path.resolve(process.env.FAILOVER_CONFIG_DIR) }
        : {}),
    });
    if (!warned) for (const w of settings.warnings) console.warn(`WARNING: ${w}`);
    warned = true;
    return {
      ...settings,
      dashboardResources: dashboardResources(settings.dashboard, buildDashboard, service, stage),
    };
  } catch (err) {
    // Serverless prints the message; the name tells ConfigError from a bug.
    throw new Error(`${err.name}: ${err.message}`);
  }
};
