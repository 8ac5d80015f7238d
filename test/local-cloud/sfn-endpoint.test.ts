// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the CloudFormation ${...} placeholders here are literal on purpose
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadPackagedStateMachines,
  type PackagedStateMachine,
} from '../../infra/local-cloud/packaged-template.ts';
import {
  formatExecutionPath,
  type SfnEndpoint,
  startSfnEndpoint,
  type TaskHandler,
} from '../../infra/local-cloud/sfn-endpoint.ts';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const fixtureDir = join(repoRoot, 'test/fixtures/sfn-mini');
const ACCOUNT = '000000000000';

class NodeUnreachableError extends Error {
  override name = 'NodeUnreachableError';
}
class ErrantTransactionsError extends Error {
  override name = 'ErrantTransactionsError';
}

type Scenario = 'healthy' | 'unhealthy' | 'flaky' | 'down' | 'errant' | 'gated';
interface ProbeInput {
  node: string;
  scenario: Scenario;
}

// Each test uses its own node name, so calls are counted per test.
const probeCalls = new Map<string, number>();
const promoteInputs: unknown[] = [];
const gates = new Map<string, { opened: Promise<void>; open: () => void }>();

function gateFor(node: string): { opened: Promise<void>; open: () => void } {
  let gate = gates.get(node);
  if (gate === undefined) {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    gate = { opened, open };
    gates.set(node, gate);
  }
  return gate;
}

const probeNode: TaskHandler = async (input) => {
  const { node, scenario } = input as ProbeInput;
  const calls = (probeCalls.get(node) ?? 0) + 1;
  probeCalls.set(node, calls);
  switch (scenario) {
    case 'healthy':
      return { healthy: true };
    case 'unhealthy':
      return { healthy: false };
    case 'flaky':
      if (calls === 1) throw new NodeUnreachableError(`${node} did not answer`);
      return { healthy: true };
    case 'down':
      throw new NodeUnreachableError(`${node} did not answer`);
    case 'errant':
      throw new ErrantTransactionsError(`${node} has errant transactions`);
    case 'gated':
      await gateFor(node).opened;
      return { healthy: false };
  }
};

const promoteNode: TaskHandler = async (input) => {
  promoteInputs.push(input);
  return { promoted: (input as { node: string }).node };
};

let workDir: string;
let templatePath: string;
let packaged: PackagedStateMachine;
let endpoint: SfnEndpoint;
let sfn: SFNClient;
let stateMachineArn: string;

async function startAndWait(input: ProbeInput, name?: string) {
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input), ...(name ? { name } : {}) }),
  );
  const record = await endpoint.waitForExecution(started.executionArn!, 20_000);
  const described = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn! }));
  return { started, record, described };
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'sfn-endpoint-'));
  // Package the fixture for real, so the test runs whatever serverless-step-functions emits.
  await run(
    process.execPath,
    [join(repoRoot, 'node_modules/osls/bin/serverless.js'), 'package', '--package', join(workDir, 'pkg')],
    {
      cwd: fixtureDir,
      timeout: 90_000,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        AWS_ACCESS_KEY_ID: 'AKIDLOCALTEST',
        AWS_SECRET_ACCESS_KEY: 'local-secret',
      },
    },
  );
  templatePath = join(workDir, 'pkg/cloudformation-template-update-stack.json');
  const machines = loadPackagedStateMachines(templatePath);
  const found = Object.values(machines).find((m) => m.name === 'mini-failover');
  if (found === undefined) throw new Error(`mini-failover not in ${Object.keys(machines).join(', ')}`);
  packaged = found;
  endpoint = await startSfnEndpoint({
    stateMachines: [
      {
        name: packaged.name ?? packaged.logicalId,
        definition: packaged.definition,
        taskHandlers: { ProbeNode: probeNode, PromoteNode: promoteNode },
      },
    ],
  });
  stateMachineArn = endpoint.stateMachineArn('mini-failover');
  sfn = new SFNClient({
    region: 'us-east-1',
    endpoint: endpoint.url,
    credentials: { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-secret' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  for (const gate of gates.values()) gate.open();
  sfn?.destroy();
  await endpoint?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('loadPackagedStateMachines', () => {
  it('resolves the packaged Fn::Sub definition to string Lambda ARNs and the region', async () => {
    const template = JSON.parse(await readFile(templatePath, 'utf8'));
    const raw = template.Resources.MiniDashfailover.Properties.DefinitionString;
    expect(raw['Fn::Sub']).toBeDefined(); // the plugin's real shape, not a hand-made one

    expect(packaged.logicalId).toBe('MiniDashfailover');
    expect(packaged.taskResources).toEqual({
      ProbeNode: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:ProbeNodeLambdaFunction`,
      PromoteNode: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:PromoteNodeLambdaFunction`,
    });
    expect(template.Resources.ProbeNodeLambdaFunction.Type).toBe('AWS::Lambda::Function');
    const text = JSON.stringify(packaged.definition);
    expect(text).not.toMatch(/\$\{|Fn::|#\{/);
    expect(text).toContain('"region":"us-east-1"');
  });

  it('resolves Fn::Join, plain strings, substitutions and Tasks nested in Parallel and Map', async () => {
    const nested = {
      StartAt: 'Fan',
      States: {
        Fan: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'Left', States: { Left: { Type: 'Task', Resource: '${LeftArn}', End: true } } },
          ],
          Next: 'Each',
        },
        Each: {
          Type: 'Map',
          ItemProcessor: {
            StartAt: 'Item',
            States: {
              Item: { Type: 'Task', Resource: 'arn:aws:lambda:${AWS::Region}:x:function:y', End: true },
            },
          },
          End: true,
        },
      },
    };
    const [head, tail] = JSON.stringify(nested).split('${LeftArn}');
    const syntheticPath = join(workDir, 'synthetic.json');
    await writeFile(
      syntheticPath,
      JSON.stringify({
        Resources: {
          LeftLambdaFunction: { Type: 'AWS::Lambda::Function', Properties: {} },
          Joined: {
            Type: 'AWS::StepFunctions::StateMachine',
            Properties: {
              DefinitionString: { 'Fn::Join': ['', [head, { Ref: 'LeftLambdaFunction' }, tail]] },
              StateMachineName: { 'Fn::Sub': '${AWS::StackName}-joined' },
            },
          },
          Plain: {
            Type: 'AWS::StepFunctions::StateMachine',
            Properties: {
              DefinitionString: JSON.stringify(nested),
              DefinitionSubstitutions: { LeftArn: { 'Fn::GetAtt': ['LeftLambdaFunction', 'Arn'] } },
            },
          },
        },
      }),
    );
    const machines = loadPackagedStateMachines(syntheticPath, {
      region: 'eu-west-1',
      accountId: '111122223333',
    });
    const leftArn = 'arn:aws:lambda:eu-west-1:111122223333:function:LeftLambdaFunction';
    expect(machines.Joined?.name).toBe('local-stack-joined');
    expect(machines.Joined?.taskResources).toEqual({
      Left: leftArn,
      Item: 'arn:aws:lambda:${AWS::Region}:x:function:y', // a plain string is not an Fn::Sub
    });
    expect(machines.Plain?.name).toBeUndefined();
    expect(machines.Plain?.taskResources.Left).toBe(leftArn);
  });
});

describe('startSfnEndpoint', () => {
  it('runs the packaged definition and takes the healthy path to PromoteNode', async () => {
    const { record, described } = await startAndWait(
      { node: 'db-healthy', scenario: 'healthy' },
      'healthy-1',
    );

    expect(record.states.map((s) => s.name)).toEqual(['ProbeNode', 'IsHealthy', 'SettleDown', 'PromoteNode']);
    expect(formatExecutionPath(record)).toBe('ProbeNode -> IsHealthy -> SettleDown -> PromoteNode');
    for (const visit of record.states)
      expect(visit.exitedAt!.getTime()).toBeGreaterThanOrEqual(visit.enteredAt.getTime());
    expect(described.status).toBe('SUCCEEDED');
    expect(described.name).toBe('healthy-1');
    expect(described.stopDate!.getTime()).toBeGreaterThanOrEqual(described.startDate!.getTime());
    expect(JSON.parse(described.output!)).toMatchObject({
      node: 'db-healthy',
      probe: { healthy: true },
      promotion: { promoted: 'db-healthy' },
    });
    // Parameters as packaged: the JSONPath selection plus the resolved pseudo-parameter and stage.
    expect(promoteInputs).toContainEqual({ node: 'db-healthy', region: 'us-east-1', stage: 'dev' });
  });

  it('takes the Choice default when the probe reports the node unhealthy', async () => {
    const { record, described } = await startAndWait({ node: 'db-unhealthy', scenario: 'unhealthy' });
    expect(record.states.map((s) => s.name)).toEqual(['ProbeNode', 'IsHealthy', 'NothingToDo']);
    expect(described.status).toBe('SUCCEEDED');
    expect(described.name).toMatch(/^[0-9a-f-]{36}$/); // generated UUID
  });

  it('retries a NodeUnreachableError after the packaged interval, then succeeds', async () => {
    const { record, described } = await startAndWait({ node: 'db-flaky', scenario: 'flaky' });
    expect(described.status).toBe('SUCCEEDED');
    expect(probeCalls.get('db-flaky')).toBe(2);
    const probe = record.states[0]!;
    expect(probe).toMatchObject({ name: 'ProbeNode', attempts: 2, outcome: 'exited' });
    expect(probe.errors.map((e) => e.error)).toEqual(['NodeUnreachableError']);
    expect(probe.exitedAt!.getTime() - probe.enteredAt.getTime()).toBeGreaterThanOrEqual(900); // IntervalSeconds: 1
    expect(record.states.at(-1)?.name).toBe('PromoteNode');
  });

  it('routes a terminal error through the Catch to the Fail state and reports FAILED with its name', async () => {
    const { record, described } = await startAndWait({ node: 'db-errant', scenario: 'errant' });
    expect(probeCalls.get('db-errant')).toBe(1); // not in the Retry's ErrorEquals
    expect(formatExecutionPath(record)).toBe('ProbeNode (caught) -> ReportFailure (failed)');
    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('ErrantTransactionsError');
    expect(JSON.parse(described.cause!)).toMatchObject({
      errorType: 'ErrantTransactionsError',
      errorMessage: 'db-errant has errant transactions',
    });
  });

  it('catches a NodeUnreachableError once the retries are used up', async () => {
    const { record, described } = await startAndWait({ node: 'db-down', scenario: 'down' });
    expect(probeCalls.get('db-down')).toBe(3); // MaxAttempts: 2 retries after the first call
    expect(record.states[0]).toMatchObject({ name: 'ProbeNode', attempts: 3, outcome: 'caught' });
    expect(described.status).toBe('FAILED');
    expect(described.error).toBe('NodeUnreachableError');
  });

  it('answers a repeated StartExecution with the same name and input idempotently while it runs', async () => {
    const input = JSON.stringify({ node: 'db-idem', scenario: 'gated' });
    const first = await sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'idem-1', input }));
    const second = await sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'idem-1', input }));
    expect(second.executionArn).toBe(first.executionArn);
    expect(second.startDate).toEqual(first.startDate);
    expect(first.executionArn).toBe(`arn:aws:states:us-east-1:${ACCOUNT}:execution:mini-failover:idem-1`);

    const running = await sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING' }));
    expect(running.executions?.map((e) => e.name)).toEqual(['idem-1']);

    const other = JSON.stringify({ node: 'db-idem-other', scenario: 'gated' });
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'idem-1', input: other })),
    ).rejects.toMatchObject({ name: 'ExecutionAlreadyExists', $metadata: { httpStatusCode: 400 } });

    gateFor('db-idem').open();
    const record = await endpoint.waitForExecution(first.executionArn!, 10_000);
    expect(record.status).toBe('SUCCEEDED');
    expect(probeCalls.get('db-idem')).toBe(1);
    expect(probeCalls.has('db-idem-other')).toBe(false);
    expect(endpoint.executions().filter((e) => e.name === 'idem-1')).toHaveLength(1);

    // Like the service, a closed execution's name stays taken.
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'idem-1', input })),
    ).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  it('stops a running execution and reports it ABORTED', async () => {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        input: JSON.stringify({ node: 'db-stop', scenario: 'gated' }),
      }),
    );
    await sfn.send(
      new StopExecutionCommand({
        executionArn: started.executionArn!,
        error: 'OperatorAbort',
        cause: 'test',
      }),
    );
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn! }));
    expect(described).toMatchObject({ status: 'ABORTED', error: 'OperatorAbort', cause: 'test' });
    gateFor('db-stop').open();
    const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn: started.executionArn! }));
    expect(history.events?.at(-1)?.type).toBe('ExecutionAborted');
    expect(endpoint.executions().find((e) => e.executionArn === started.executionArn)?.status).toBe(
      'ABORTED',
    );
  });

  it('lists the states entered and exited with timestamps in GetExecutionHistory', async () => {
    const { started } = await startAndWait({ node: 'db-history', scenario: 'healthy' });
    const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn: started.executionArn! }));
    const events = history.events ?? [];
    expect(events.map((e) => e.type)).toEqual([
      'ExecutionStarted',
      'TaskStateEntered',
      'TaskStateExited',
      'ChoiceStateEntered',
      'ChoiceStateExited',
      'WaitStateEntered',
      'WaitStateExited',
      'TaskStateEntered',
      'TaskStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events[1]?.stateEnteredEventDetails?.name).toBe('ProbeNode');
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    const times = events.map((e) => e.timestamp!.getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('rejects an unknown state machine, an invalid name and input that is not JSON', async () => {
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn: endpoint.stateMachineArn('no-such-machine') })),
    ).rejects.toMatchObject({ name: 'StateMachineDoesNotExist' });
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn, name: 'has spaces', input: '{}' })),
    ).rejects.toMatchObject({ name: 'InvalidName' });
    await expect(
      sfn.send(new StartExecutionCommand({ stateMachineArn, input: '{not json' })),
    ).rejects.toMatchObject({ name: 'InvalidExecutionInput' });
  });

  it('refuses a request without a SigV4 Authorization header', async () => {
    const response = await fetch(endpoint.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'AWSStepFunctions.ListExecutions',
      },
      body: JSON.stringify({ stateMachineArn }),
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });

  it('refuses to start when a Task state has no handler', async () => {
    await expect(
      startSfnEndpoint({
        stateMachines: [
          { name: 'incomplete', definition: packaged.definition, taskHandlers: { ProbeNode: probeNode } },
        ],
      }),
    ).rejects.toThrow(/no task handler for Task state\(s\): PromoteNode/);
  });
});
