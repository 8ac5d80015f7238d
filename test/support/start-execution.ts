import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

/** StartExecution through the real SDK, as the health check or an operator would. */
export async function startExecution(stateMachineArn: string, name: string, input: unknown): Promise<void> {
  const sfn = new SFNClient({});
  try {
    await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
  } finally {
    sfn.destroy();
  }
}
