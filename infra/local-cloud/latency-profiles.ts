/**
 * Provider latencies for the emulators. 'none' keeps the emulators fast (tests); 'realistic'
 * (the bench's default) makes each emulated API answer and settle in roughly the time the real
 * provider takes, so vipMs and RTO include the provider's share.
 *
 * Where the values come from: neither AWS nor Alibaba Cloud publishes latency figures for these
 * APIs. Their references only say the operations are asynchronous (EC2 "Remapping an IP address is
 * an asynchronous operation"; AssociateHaVip / UnassociateHaVip "asynchronous ... Associating ->
 * InUse"; RunCommand "asynchronous ... call DescribeInvocationResults"). The values below are
 * therefore stated assumptions for an in-region caller (Lambda in the same region as the VPC),
 * chosen on the slow side of what such control-plane calls usually take, and they are easy to
 * change here:
 *   - EC2 Query API round trip: Describe* 100 ms, mutating calls 150 ms.
 *   - AssignPrivateIpAddresses remap visible in DescribeNetworkInterfaces: 1000 ms.
 *   - ReplaceRoute visible in DescribeRouteTables: 500 ms.
 *   - Alibaba VPC / ECS RPC round trip: 150 ms.
 *   - HaVip Associating -> InUse and Unassociating -> done: 1500 ms each.
 *   - Cloud Assistant command round trip (agent picks the command up, runs `ip addr add` + arping,
 *     reports): 1000 ms.
 *
 * Step Functions (Standard workflows) and Lambda: AWS publishes quotas and prices for these, not
 * latencies, so these too are stated assumptions, read from the gaps between consecutive events of
 * Standard execution histories as they usually look (TaskStateEntered -> TaskScheduled ->
 * TaskStarted -> TaskSucceeded -> TaskStateExited are tens of milliseconds apart) and kept on the
 * slow side:
 *   - StartExecution accepted -> first state entered: 100 ms.
 *   - one state transition (previous state exited -> next state entered): 25 ms.
 *   - Step Functions -> Lambda Invoke of a Task (TaskScheduled -> the function's code runs) on a
 *     warm instance: 40 ms. A cold instance adds its own init, which the local Lambda runtime
 *     measures instead of assuming.
 */

export type LatencyMode = 'none' | 'realistic';

export interface Ec2Latency {
  /** Answer delay per EC2 action (ms). */
  apiMs: Record<string, number>;
  /** Delay before a secondary-IP reassignment shows in DescribeNetworkInterfaces and the data path. */
  assignPropagationMs: number;
  /** Delay before a ReplaceRoute shows in DescribeRouteTables and the data path. */
  routePropagationMs: number;
}

export interface AliyunLatency {
  /** Answer delay per VPC/ECS action (ms). */
  apiMs: Record<string, number>;
  /** Duration of HaVip Associating / Unassociating. */
  transitionMs: number;
  /** Duration of one Cloud Assistant invocation. */
  commandMs: number;
}

/** Step Functions Standard workflow overheads around each Task (see the file comment). */
export interface SfnLatency {
  /** StartExecution accepted -> the first state entered. */
  executionStartMs: number;
  /** One state transition. */
  stateTransitionMs: number;
  /** The Lambda Invoke of a Task on a warm instance, before the function's code runs. */
  lambdaInvokeMs: number;
}

/** The realistic profile (see the file comment for the sources and assumptions). */
export const REALISTIC_LATENCY: { ec2: Ec2Latency; aliyun: AliyunLatency; sfn: SfnLatency } = {
  ec2: {
    apiMs: {
      DescribeNetworkInterfaces: 100,
      DescribeRouteTables: 100,
      AssignPrivateIpAddresses: 150,
      UnassignPrivateIpAddresses: 150,
      ReplaceRoute: 150,
    },
    assignPropagationMs: 1000,
    routePropagationMs: 500,
  },
  aliyun: {
    apiMs: {
      DescribeHaVips: 150,
      AssociateHaVip: 150,
      UnassociateHaVip: 150,
      RunCommand: 150,
      DescribeInvocationResults: 150,
      DescribeInvocations: 150,
    },
    transitionMs: 1500,
    commandMs: 1000,
  },
  sfn: { executionStartMs: 100, stateTransitionMs: 25, lambdaInvokeMs: 40 },
};

/** The emulators' own fast defaults, for tests. */
export const NO_LATENCY: { ec2: Ec2Latency; aliyun: AliyunLatency; sfn: SfnLatency } = {
  ec2: { apiMs: {}, assignPropagationMs: 50, routePropagationMs: 50 },
  aliyun: { apiMs: {}, transitionMs: 200, commandMs: 200 },
  sfn: { executionStartMs: 0, stateTransitionMs: 0, lambdaInvokeMs: 0 },
};

/** The profile for a mode. */
export function latencyProfile(mode: LatencyMode): {
  ec2: Ec2Latency;
  aliyun: AliyunLatency;
  sfn: SfnLatency;
} {
  return mode === 'realistic' ? REALISTIC_LATENCY : NO_LATENCY;
}
