// Resolves deploy-time settings for serverless.yml: the failover config (injected into the
// functions as FAILOVER_CONFIG) and the deployment's VPC settings. Looked up in
// FAILOVER_CONFIG_FILE / DEPLOY_CONFIG_FILE, then config/*.json, then the examples, so that
// `serverless package` works offline from a clean clone.
const fs = require('node:fs');
const path = require('node:path');

function pick(envName, local, example) {
  const root = path.join(__dirname, '..');
  const file = process.env[envName] || (fs.existsSync(path.join(root, local)) ? local : example);
  return JSON.parse(fs.readFileSync(path.resolve(root, file), 'utf8'));
}

module.exports = () => {
  const failover = pick('FAILOVER_CONFIG_FILE', 'config/clusters.json', 'config/clusters.example.json');
  const deploy = pick('DEPLOY_CONFIG_FILE', 'config/deploy.json', 'config/deploy.example.json');
  return { failoverConfig: JSON.stringify(failover), ...deploy };
};
