import { describe, expect, it } from 'vitest';
import { analyzeTopology } from '../../lib/core/analyze-topology.ts';
import type { ClusterSnapshot, NodeProbe, ReplicationStatus } from '../../lib/core/types.ts';
import { countIndicators, evaluateAlertRules } from '../../lib/health/alert-rules.ts';
import { ALARM_METRICS, METRIC_DETAILS, METRICS_WINDOW_MS, MetricsWindow } from '../../lib/health/metrics.ts';

const T = { replicaLagAlertSeconds: 5, longTransactionAlertSeconds: 60 };

function replication(over: Partial<ReplicationStatus> = {}): ReplicationStatus {
  return {
    sourceHost: '127.0.0.1',
    sourcePort: 3307,
    ioState: 'Yes',
    sqlRunning: true,
    lastIoErrno: 0,
    lastIoError: '',
    lastSqlErrno: 0,
    lastSqlError: '',
    secondsBehindMaster: 0,
    gtidIoPos: '0-1-10',
    heartbeatsReceived: 5,
    usingGtid: 'Slave_Pos',
    ...over,
  };
}

function snapshot(
  primary: Partial<NodeProbe>,
  r1: Partial<NodeProbe>,
  r2: Partial<NodeProbe>,
): ClusterSnapshot {
  return {
    cluster: 'lab',
    takenAt: 1_000,
    primaryId: 'n1',
    nodes: [
      {
        nodeId: 'n1',
        reachable: true,
        probeMs: 3,
        readOnly: false,
        writable: true,
        longestTrxSeconds: 0,
        semiSync: {
          masterEnabled: true,
          masterActive: true,
          masterClients: 2,
          slaveEnabled: false,
          slaveActive: false,
        },
        ...primary,
      },
      { nodeId: 'n2', reachable: true, probeMs: 3, replication: replication(), heartbeatLagMs: 200, ...r1 },
      { nodeId: 'n3', reachable: true, probeMs: 3, replication: replication(), heartbeatLagMs: 200, ...r2 },
    ],
  };
}

const rules = (s: ClusterSnapshot) => evaluateAlertRules(s, analyzeTopology(s, []), T).map((a) => a.key);

describe('evaluateAlertRules', () => {
  it('raises nothing on a healthy cluster', () => {
    expect(rules(snapshot({}, {}, {}))).toEqual([]);
  });

  it('raises one alert per rule and node: IO and SQL thread stopped, lag over 5 s, semi-sync inactive, a 61 s transaction', () => {
    const s = snapshot(
      {
        longestTrxSeconds: 61,
        semiSync: {
          masterEnabled: true,
          masterActive: false,
          masterClients: 0,
          slaveEnabled: false,
          slaveActive: false,
        },
      },
      { replication: replication({ ioState: 'No', sqlRunning: false }) },
      { replication: replication({ secondsBehindMaster: 7 }) },
    );
    expect(rules(s).sort()).toEqual(
      [
        'LongTransaction:n1',
        'ReplicaIoStopped:n2',
        'ReplicaLagging:n3',
        'ReplicaSqlStopped:n2',
        'SemiSyncInactive:n1',
      ].sort(),
    );
    expect(countIndicators(evaluateAlertRules(s, analyzeTopology(s, []), T))).toEqual({
      ReplicasIoStopped: 1,
      ReplicasSqlStopped: 1,
      SemiSyncInactive: 1,
      ReplicasLagging: 1,
      LongTransactionOpen: 1,
    });
  });

  it('uses the heartbeat-table lag when the server reports none above the limit', () => {
    expect(rules(snapshot({}, { heartbeatLagMs: 8000 }, {}))).toEqual(['ReplicaLagging:n2']);
  });

  it('stays silent about IO threads and lag while the primary itself is unreachable', () => {
    const s = snapshot(
      { reachable: false, error: { kind: 'refused', code: 'ECONNREFUSED', message: 'refused' } },
      { replication: replication({ ioState: 'Connecting', secondsBehindMaster: null }) },
      { replication: replication({ ioState: 'Connecting', secondsBehindMaster: null }) },
    );
    expect(rules(s)).toEqual([]);
  });
});

describe('MetricsWindow', () => {
  it('keeps the worst value of the window and emits every alarm metric with and without the Cluster dimension', () => {
    const w = new MetricsWindow('lab');
    const bad = snapshot({}, { replication: replication({ ioState: 'No' }) }, {});
    w.add(bad, analyzeTopology(bad, []), evaluateAlertRules(bad, analyzeTopology(bad, []), T), 1);
    const good = snapshot({}, {}, {});
    w.add(good, analyzeTopology(good, []), [], 1);
    // Under the alarms' 60 s period: every minute gets a datapoint.
    expect(METRICS_WINDOW_MS).toBeLessThan(60_000);
    expect(w.due(1_000 + METRICS_WINDOW_MS - 1)).toBe(false);
    expect(w.due(1_000 + METRICS_WINDOW_MS)).toBe(true);
    const lines = w.flush(20_000);
    const cluster = lines.find((l) => l.Node === undefined)!;
    expect(cluster).toMatchObject({ ReplicasIoStopped: 1, StateChanges: 2, ClusterHealthy: 0 });
    const n2 = lines.find((l) => l.Node === 'n2')!;
    expect(n2).toMatchObject({ ReplicaIoRunning: 0, NodeReachable: 1 });
    const directives = (
      cluster._aws as { CloudWatchMetrics: Array<{ Dimensions: string[][]; Metrics: { Name: string }[] }> }
    ).CloudWatchMetrics;
    for (const dims of [[['Cluster']], [[]]]) {
      const d = directives.find((x) => JSON.stringify(x.Dimensions) === JSON.stringify(dims))!;
      for (const m of ALARM_METRICS) expect(d.Metrics.map((x) => x.Name)).toContain(m);
    }
    expect(w.flush(30_000)).toEqual([]);
  });

  it.each(METRIC_DETAILS)(
    'detail %s: the alarm metrics stay dimensionless, the per-cluster metrics are what the level bills',
    (detail) => {
      const w = new MetricsWindow('lab', detail);
      const good = snapshot({}, {}, {});
      w.add(good, analyzeTopology(good, []), [], 0, 42);
      const lines = w.flush(20_000);
      const directives = lines.flatMap(
        (l) =>
          (l._aws as { CloudWatchMetrics: Array<{ Dimensions: string[][]; Metrics: { Name: string }[] }> })
            .CloudWatchMetrics,
      );
      const dimensionless = directives.find((d) => JSON.stringify(d.Dimensions) === '[[]]')!;
      expect(dimensionless.Metrics.map((m) => m.Name).sort()).toEqual([...ALARM_METRICS].sort());
      const perCluster = directives
        .filter((d) => JSON.stringify(d.Dimensions) !== '[[]]')
        .flatMap((d) => d.Metrics.map((m) => `${d.Dimensions[0]!.join('+')}:${m.Name}`));
      if (detail === 'deployment') expect(perCluster).toEqual([]);
      if (detail === 'cluster')
        expect(perCluster.sort()).toEqual(['Cluster:ClusterHealthy', 'Cluster:ProbeRoundMs']);
      if (detail === 'node')
        expect(perCluster.filter((m) => m.startsWith('Cluster+Node:')).length).toBeGreaterThan(0);
      // The values stay in the log lines whatever the level (Logs Insights, metric filters).
      const cluster = lines.find((l) => l.Node === undefined)!;
      expect(cluster).toMatchObject({ Cluster: 'lab', ClusterHealthy: 1, ProbeRoundMs: 42 });
      expect(lines.filter((l) => l.Node !== undefined).length).toBe(3);
    },
  );
});
