/** What the dashboard shows, read from serverless.yml at package time. */
export interface DashboardInput {
  /** `${self:service}-${sls:stage}`: the prefix of the functions' and state machines' names. */
  prefix: string;
  /** serverless.yml function keys (their log groups are /aws/lambda/<prefix>-<key>). */
  functions: readonly string[];
  /** Logical ids of the AWS::CloudWatch::Alarm resources. */
  alarms: readonly string[];
  /** Logical ids of the state machines (failover first). */
  stateMachines: readonly string[];
}

/** Resolved by Fn::Sub. */
const REGION = `\${AWS::Region}`;

/**
 * The CloudWatch dashboard of a deployment, as a DashboardBody `Fn::Sub` (region, alarm ARNs and
 * state machine ARNs resolved by CloudFormation): per-cluster health state and probe round time
 * (Logs Insights over the EMF log lines, so 500 clusters need neither a widget nor a metric each),
 * failovers and switchovers
 * (Step Functions metrics), every failover step with its timing (the `failover-step` log lines),
 * the alarms, and the errors of every function.
 */
export function buildDashboard(d: DashboardInput): { 'Fn::Sub': string } {
  const logSources = d.functions.map((f) => `SOURCE '/aws/lambda/${d.prefix}-${f}'`).join(' | ');
  const widgets: object[] = [];
  const at = (x: number, y: number, width: number, height: number, w: object) =>
    widgets.push({ x, y, width, height, ...w });
  at(0, 0, 24, 2, {
    type: 'text',
    properties: {
      markdown: `## MySQL failover: ${d.prefix}\nHealth 1 = NoProblem, 0 = any other state in the minute (status says which). Runbook: \`serverless invoke -f status\`, \`-f check\`, \`-f plan\`; logs: \`serverless logs -f healthCheck\`.`,
    },
  });
  at(0, 2, 24, 3, {
    type: 'alarm',
    properties: { title: 'Alarms', alarms: d.alarms.map((a) => `\${${a}.Arn}`) },
  });
  // Per cluster from the EMF log lines (every value is there with its Cluster property, whatever
  // FAILOVER_METRICS_DETAIL is), not from per-cluster metrics at $0.30 each a month.
  const healthLog = `SOURCE '/aws/lambda/${d.prefix}-healthCheck'`;
  at(0, 5, 12, 6, {
    type: 'log',
    properties: {
      title: 'Cluster health per cluster, worst first (1 = NoProblem throughout)',
      region: REGION,
      view: 'table',
      query: `${healthLog} | filter ispresent(ClusterHealthy) | stats min(ClusterHealthy) as healthy, max(ProbeRoundMs) as worstRoundMs, max(StateChanges) as changes by Cluster | sort healthy asc, worstRoundMs desc | limit 1000`,
    },
  });
  at(12, 5, 12, 6, {
    type: 'log',
    properties: {
      title: 'Probe round time, worst cluster (ms, max per minute)',
      region: REGION,
      view: 'timeSeries',
      query: `${healthLog} | filter ispresent(ProbeRoundMs) | stats max(ProbeRoundMs) as worstRoundMs by bin(1m)`,
    },
  });
  const machineMetrics = d.stateMachines.flatMap((m) =>
    ['ExecutionsStarted', 'ExecutionsSucceeded', 'ExecutionsFailed'].map((name) => [
      'AWS/States',
      name,
      'StateMachineArn',
      `\${${m}}`,
      { label: `${m.replace(/StateMachine$/, '')} ${name.replace('Executions', '').toLowerCase()}` },
    ]),
  );
  at(0, 11, 12, 6, {
    type: 'metric',
    properties: {
      title: 'Failovers and switchovers',
      region: REGION,
      view: 'timeSeries',
      stat: 'Sum',
      period: 60,
      metrics: machineMetrics,
    },
  });
  at(12, 11, 12, 6, {
    type: 'metric',
    properties: {
      title: 'Execution time (ms)',
      region: REGION,
      view: 'timeSeries',
      stat: 'Maximum',
      period: 60,
      metrics: d.stateMachines.map((m) => ['AWS/States', 'ExecutionTime', 'StateMachineArn', `\${${m}}`]),
    },
  });
  at(0, 17, 24, 7, {
    type: 'log',
    properties: {
      title: 'Failover steps and their timings',
      region: REGION,
      view: 'table',
      query: `${logSources} | fields @timestamp, cluster, epoch, name, result, endedAt - startedAt as ms, error.name | filter type = "failover-step" | sort @timestamp desc | limit 100`,
    },
  });
  at(0, 24, 24, 6, {
    type: 'log',
    properties: {
      title: 'Errors and warnings',
      region: REGION,
      view: 'table',
      query: `${logSources} | fields @timestamp, function, requestId, level, type, cluster, message | filter level = "error" or level = "warn" | sort @timestamp desc | limit 100`,
    },
  });
  return { 'Fn::Sub': JSON.stringify({ widgets }) };
}
