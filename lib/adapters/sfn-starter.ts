import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

export interface FailoverStarter {
  /** Starts the failover state machine; the same name twice starts one execution. */
  start(name: string, input: unknown): Promise<{ executionArn: string; alreadyStarted: boolean }>;
}

export class SfnFailoverStarter implements FailoverStarter {
  private readonly client: SFNClient;

  constructor(
    private readonly stateMachineArn: string,
    options: { client?: SFNClient } = {},
  ) {
    this.client = options.client ?? new SFNClient({});
  }

  async start(name: string, input: unknown): Promise<{ executionArn: string; alreadyStarted: boolean }> {
    try {
      const r = await this.client.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name,
          input: JSON.stringify(input),
        }),
      );
      return { executionArn: r.executionArn ?? '', alreadyStarted: false };
    } catch (err) {
      // Same name, other input: an execution for this epoch exists already. That is the
      // "one execution per incident" guarantee working, not a failure.
      if ((err as Error).name === 'ExecutionAlreadyExists') {
        return {
          executionArn: `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
          alreadyStarted: true,
        };
      }
      throw err;
    }
  }
}
