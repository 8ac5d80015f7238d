/**
 * The local sandbox: `npm start` runs a real 3-node MariaDB cluster and the local cloud with
 * the scheduled health check; `npm run sandbox -- <command>` talks to a running sandbox.
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { plain as acknowledge } from '../../functions/acknowledge.ts';
import { plain as check } from '../../functions/check.ts';
import { plain as failover } from '../../functions/failover.ts';
import { plain as plan } from '../../functions/plan.ts';
import { plain as rejoin } from '../../functions/rejoin.ts';
import { plain as switchover } from '../../functions/switchover.ts';
import { clusterStatus, formatStatus } from '../../lib/operator/status.ts';
import { getRuntime } from '../../lib/runtime.ts';
import { findMariadbd, type MariaDbCluster, startCluster } from '../cluster/mariadb-cluster.ts';
import { type LocalCloud, startLocalCloud, VIP_ADDRESS } from '../local-cloud/local-cloud.ts';
import { PROJECT_ROOT } from '../local-cloud/packaged-functions.ts';
import { WRITES_TABLE_DDL } from '../workload/writer.ts';

const CONTROL_FILE = join(PROJECT_ROOT, '.sandbox', 'control.json');
const USAGE = `usage: npm start                      start the sandbox (Ctrl-C stops and removes everything)
       npm run sandbox -- status       the health report
       npm run sandbox -- kill primary|<node>      crash (kill -9)
       npm run sandbox -- hang primary|<node> [s]  freeze (SIGSTOP), thaw after s seconds if given
       npm run sandbox -- resume <node>            thaw (SIGCONT)
       npm run sandbox -- restart <node> [--as-replica]  start a stopped/crashed node again
                                                   (--as-replica: --init-rpl-role=SLAVE, read-only: truncates
                                                   an unacknowledged semi-sync tail)
       npm run sandbox -- switchover [candidate]   planned switchover (the switchover state machine)
       npm run sandbox -- failover [candidate] [--ignore-lag] [--ignore-block] [--force]
                                                   manual failover of a failed primary (--force: a live one)
       npm run sandbox -- rejoin <node> [--rebuild]  bring a former primary back as a replica
       npm run sandbox -- check                    pre-flight check (grants, settings, VIP)
       npm run sandbox -- acknowledge              clear the anti-flap block
       npm run sandbox -- plan                     dry run: what a failover would do now`;

const stamp = () => new Date().toISOString().slice(11, 23);
const say = (line: string) => process.stdout.write(`${stamp()}  ${line}\n`);

async function start(): Promise<void> {
  try {
    findMariadbd();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  let cluster: MariaDbCluster | undefined;
  let cloud: LocalCloud | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('stopping: local cloud, MariaDB nodes, temp dirs ...');
    await cloud?.stop().catch(() => {});
    await cluster?.destroy().catch(() => {});
    rmSync(CONTROL_FILE, { force: true });
    say('stopped; nothing left behind.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const t0 = Date.now();
  say('starting a 3-node MariaDB 10.11 cluster (GTID, semi-sync AFTER_SYNC) ...');
  cluster = await startCluster({ log: () => {} });
  await cluster.query('db1', WRITES_TABLE_DDL);
  say(
    `cluster ready in ${Date.now() - t0} ms: ${cluster.nodes.map((n) => `${n.id}=127.0.0.1:${n.port}`).join('  ')}`,
  );
  say('starting the local cloud (dynalite, EC2 + VIP data path, Step Functions, scheduler) ...');
  // The packaged runtime (the zips `serverless deploy` would upload, Node 22, CPU limited by
  // MemorySize); SANDBOX_RUNTIME=inprocess runs the TypeScript handlers in this process.
  cloud = await startLocalCloud({
    cluster,
    clusterName: 'sandbox',
    log: say,
    onLog: printEvent,
    runtime: process.env.SANDBOX_RUNTIME === 'inprocess' ? 'inprocess' : 'packaged',
  });
  const app = cluster.credentials.app;
  const c = cloud;
  const cl = cluster;

  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    handleCommand(cl, c, url.pathname.slice(1), url.searchParams.getAll('arg'))
      .then((text) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(text);
      })
      .catch((err: Error) => {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(`${err.message}\n`);
      });
  });
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', () => r()));
  mkdirSync(join(PROJECT_ROOT, '.sandbox'), { recursive: true });
  writeFileSync(
    CONTROL_FILE,
    JSON.stringify({ port: (control.address() as { port: number }).port, pid: process.pid }),
  );

  console.log(`
  The sandbox is up (${Date.now() - t0} ms). The health check fires on its packaged schedule (rate 1 minute,
  each invocation probing every second). Clients use the VIP ${VIP_ADDRESS}, which the local cloud
  serves on 127.0.0.1:${c.vip.port}:

    mariadb -h 127.0.0.1 -P ${c.vip.port} -u ${app.user} -p'${app.password}' app

  Break things from another terminal and watch the failover here:
    npm run sandbox -- kill primary        crash the primary (kill -9)
    npm run sandbox -- hang primary 10     freeze it for 10 s (a short hang must not fail over)
    npm run sandbox -- status              the health report
    npm run sandbox -- switchover          planned switchover to the best replica
    npm run sandbox -- check | plan        pre-flight check | failover dry run
    npm run sandbox -- rejoin db1          after a failover: db1 back as a replica
  Ctrl-C stops and removes everything.
`);
  // Reprint when a role, thread, reachability or the analysis changes; GTIDs move with every
  // heartbeat write, so they alone refresh the table only every 30 s.
  let lastKey = '';
  let lastAt = 0;
  const show = async () => {
    const rt = getRuntime();
    const s = await clusterStatus(rt, rt.cluster('sandbox'));
    const key = JSON.stringify({ ...s, nodes: s.nodes.map(({ gtid: _g, lagSeconds: _l, ...n }) => n) });
    if (key !== lastKey || Date.now() - lastAt > 30_000) {
      lastKey = key;
      lastAt = Date.now();
      console.log(`\n${formatStatus(s)}\n`);
    }
  };
  for (;;) {
    await show().catch((err: Error) => say(`status: ${err.message}`));
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function printEvent(e: Record<string, unknown>): void {
  switch (e.type) {
    case 'failover-started':
      say(
        `>>> ${String((e.reason as { analysis?: string })?.analysis)} confirmed (${String((e.reason as { evidence?: string })?.evidence)} evidence): starting ${String(e.executionName)}`,
      );
      break;
    case 'failover-step':
      say(
        `    ${e.result === 'error' ? 'x' : e.result === 'skipped' ? '-' : '✓'} ${String(e.name).padEnd(17)} ${String(Number(e.endedAt) - Number(e.startedAt)).padStart(5)} ms${e.error ? `  ${(e.error as { name: string; message: string }).name}: ${(e.error as { message: string }).message}` : ''}${e.detail && (e.detail as Record<string, unknown>).candidate ? `  candidate ${String((e.detail as Record<string, unknown>).candidate)}` : ''}`,
      );
      break;
    case 'notification':
      say(`[${String(e.severity)}] ${String(e.subject)}: ${String(e.message)}`);
      break;
    default:
      if (e.level === 'error') say(`error: ${JSON.stringify(e)}`);
  }
}

async function handleCommand(
  cluster: MariaDbCluster,
  cloud: LocalCloud,
  cmd: string,
  args: string[],
): Promise<string> {
  const rt = getRuntime();
  // Operator commands run the packaged functions as `serverless invoke -f <name>` would.
  type Out<F extends (...a: never[]) => unknown> = Awaited<ReturnType<F>>;
  const invoke = <F extends (...a: never[]) => unknown>(_fn: F, id: string, event: unknown) =>
    cloud.invoke(id, event) as Promise<Out<F>>;
  const state = await rt.store.getClusterState('sandbox');
  const target = (name: string | undefined) => {
    const id = name === 'primary' || name === undefined ? (state?.primaryId ?? 'db1') : name;
    cluster.node(id); // throws for an unknown node
    return id;
  };
  switch (cmd) {
    case 'status':
      return `${formatStatus(await clusterStatus(rt, rt.cluster('sandbox')))}\n`;
    case 'kill': {
      const id = target(args[0]);
      await cluster.crash(id);
      return `killed ${id} (kill -9) at ${stamp()}\n`;
    }
    case 'hang': {
      const id = target(args[0]);
      cluster.hang(id);
      const secs = Number(args[1]);
      if (secs > 0) setTimeout(() => cluster.resume(id), secs * 1000);
      return `froze ${id} (SIGSTOP) at ${stamp()}${secs > 0 ? `, thawing in ${secs} s` : `; resume with: npm run sandbox -- resume ${id}`}\n`;
    }
    case 'resume': {
      const id = target(args[0]);
      cluster.resume(id);
      return `resumed ${id} (SIGCONT)\n`;
    }
    case 'restart': {
      const id = target(args[0]);
      const asReplica = args.includes('--as-replica');
      await cluster.restart(id, asReplica ? { initRplRole: 'SLAVE', readOnly: true } : undefined);
      return `restarted ${id}${asReplica ? ' with --init-rpl-role=SLAVE --read-only' : ''}${state?.needsRejoin?.includes(id) ? ` (a former primary: run "npm run sandbox -- rejoin ${id}" before it serves)` : ''}\n`;
    }
    case 'switchover': {
      const r = await invoke(switchover, 'SwitchoverLambdaFunction', {
        cluster: 'sandbox',
        ...(args[0] ? { candidate: args[0] } : {}),
      });
      return `${r.report}\n`;
    }
    case 'failover': {
      const candidate = args.find((a) => !a.startsWith('--'));
      const r = await failover({
        cluster: 'sandbox',
        ...(candidate ? { candidate } : {}),
        ...(args.includes('--ignore-lag') ? { ignoreLag: true } : {}),
        ...(args.includes('--ignore-block') ? { ignoreBlock: true } : {}),
        ...(args.includes('--force') ? { force: true } : {}),
      });
      return `${r.report}\n`;
    }
    case 'rejoin': {
      const node = args.find((a) => !a.startsWith('--'));
      if (!node) throw new Error(`rejoin needs a node\n${USAGE}`);
      const r = await invoke(rejoin, 'RejoinLambdaFunction', {
        cluster: 'sandbox',
        node,
        ...(args.includes('--rebuild') ? { rebuild: true } : {}),
      });
      return `${r.report}\n`;
    }
    case 'check':
      return `${(await invoke(check, 'CheckLambdaFunction', { cluster: 'sandbox' })).report}\n`;
    case 'acknowledge':
      return `${(await invoke(acknowledge, 'AcknowledgeLambdaFunction', { cluster: 'sandbox' })).report}\n`;
    case 'plan':
      return `${(await invoke(plan, 'PlanLambdaFunction', { cluster: 'sandbox' })).report}\n`;
    default:
      throw new Error(`unknown command "${cmd}"\n${USAGE}`);
  }
}

async function client(cmd: string, args: string[]): Promise<void> {
  let port: number;
  try {
    port = (JSON.parse(readFileSync(CONTROL_FILE, 'utf8')) as { port: number }).port;
  } catch {
    console.error('No sandbox is running here. Start one with: npm start');
    process.exit(2);
  }
  const qs = args.map((a) => `arg=${encodeURIComponent(a)}`).join('&');
  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: `/${cmd}?${qs}`, method: 'POST' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        (res.statusCode === 200 ? process.stdout : process.stderr).write(
          body.endsWith('\n') ? body : `${body}\n`,
        );
        if (res.statusCode !== 200) process.exitCode = 2;
        resolve();
      });
    });
    req.on('error', () => {
      console.error('The sandbox does not answer (stopped?). Start one with: npm start');
      process.exitCode = 2;
      resolve();
    });
    req.end();
  });
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'start') await start();
else if (!cmd || cmd === 'help' || cmd === '--help') console.log(USAGE);
else await client(cmd, args);
