import type { SFNClient } from '@aws-sdk/client-sfn';
import { boundedRequests } from './sdk/bounded.ts';

type Sdk = typeof import('./sdk/sfn-start.ts');

export interface StartedExecution {
  executionArn: string;
  /** The name the execution runs under: `name`, or `name-a<N>` when earlier attempts ended. */
  executionName: string;
  /** An execution for this incident is running already: nothing was started. */
  alreadyStarted: boolean;
}

export interface FailoverStarter {
  /**
   * Starts the failover state machine as `name`. While an execution of that name (or of a later
   * attempt) runs, nothing else is started. When it ended, the next attempt `name-a2`, `name-a3`,
   * ... is started, with `executionName` in the input set to it.
   */
  start(name: string, input: unknown): Promise<StartedExecution>;
}

/** Attempts per epoch; each one is a full execution that ended before claiming the epoch. */
export const MAX_START_ATTEMPTS = 20;

/**
 * StartExecution with the failover's naming rule. Step Functions keeps a name for 90 days, so a
 * name per epoch alone burns the incident when an execution ends before its BeginFailover claims
 * the epoch (a DynamoDB error): every later start is `ExecutionAlreadyExists`. The caller starts
 * only while the stored epoch is still the one the name carries, so an ended execution of that
 * name never claimed it (a claim advances the epoch for good): the next attempt is started under
 * a new name. Exactly-once stays guaranteed by BeginFailover's conditional epoch claim, not by
 * the name.
 */
export class SfnFailoverStarter implements FailoverStarter {
  private client: SFNClient | undefined;

  constructor(
    private readonly stateMachineArn: string,
    options: { client?: SFNClient } = {},
  ) {
    this.client = options.client;
  }

  /** The SDK is loaded on the first start, not at import: the health check's cold start. */
  private async sdk(): Promise<{ sdk: Sdk; client: SFNClient }> {
    const sdk = await import('./sdk/sfn-start.ts');
    this.client ??= new sdk.SFNClient(boundedRequests());
    return { sdk, client: this.client };
  }

  async start(name: string, input: unknown): Promise<StartedExecution> {
    for (let attempt = 1; attempt <= MAX_START_ATTEMPTS; attempt++) {
      const executionName = attempt === 1 ? name : `${name}-a${attempt}`;
      const executionArn = `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:${executionName}`;
      // A later attempt is looked up first: StartExecution answers a running execution of the same
      // name and input as if it had started it, which would count one execution twice.
      if (attempt > 1) {
        const status = await this.status(executionArn);
        if (status === 'RUNNING' || status === 'PENDING_REDRIVE') {
          return { executionArn, executionName, alreadyStarted: true };
        }
        if (status !== undefined) continue;
      }
      try {
        const { sdk, client } = await this.sdk();
        const r = await client.send(
          new sdk.StartExecutionCommand({
            stateMachineArn: this.stateMachineArn,
            name: executionName,
            input: JSON.stringify(withExecutionName(input, executionName)),
          }),
        );
        return { executionArn: r.executionArn ?? executionArn, executionName, alreadyStarted: false };
      } catch (err) {
        if ((err as Error).name !== 'ExecutionAlreadyExists') throw err;
      }
      const status = await this.status(executionArn);
      // Running: the "one execution per incident" guarantee working, not a failure.
      if (status === 'RUNNING' || status === 'PENDING_REDRIVE') {
        return { executionArn, executionName, alreadyStarted: true };
      }
    }
    throw new Error(
      `Cannot start ${name}: ${MAX_START_ATTEMPTS} executions for this epoch ended without claiming it. Check the failover records and the state table's availability.`,
    );
  }

  /** The execution's status, or undefined when there is no execution of that ARN. */
  private async status(executionArn: string): Promise<string | undefined> {
    try {
      const { sdk, client } = await this.sdk();
      const d = await client.send(new sdk.DescribeExecutionCommand({ executionArn }));
      return d.status ?? 'RUNNING';
    } catch (err) {
      if ((err as Error).name === 'ExecutionDoesNotExist') return undefined;
      throw err;
    }
  }
}

function withExecutionName(input: unknown, executionName: string): unknown {
  if (typeof input !== 'object' || input === null || !('executionName' in input)) return input;
  return { ...input, executionName };
}
