import { EventBridgePublisher, type EventPublisher } from '../adapters/eventbridge-publisher.ts';
import { type HookInvoker, LambdaHookInvoker } from '../adapters/lambda-hooks.ts';

/** EventBridge events and hook Lambdas of the failover steps. */
export interface FailoverIntegrations {
  /** Undefined when EVENT_BUS_NAME is not set: no events. */
  events: EventPublisher | undefined;
  hooks: HookInvoker;
}

let cached: FailoverIntegrations | undefined;

/**
 * The integrations, built once per container from the environment: EVENT_BUS_NAME (e.g.
 * "default") enables the EventBridge events; hooks use the Lambda API of the SDK's endpoint.
 */
export function getFailoverIntegrations(
  log: (entry: Record<string, unknown>) => void = () => {},
): FailoverIntegrations {
  if (!cached) {
    const bus = process.env.EVENT_BUS_NAME;
    cached = {
      events: bus ? new EventBridgePublisher(bus, { log }) : undefined,
      hooks: new LambdaHookInvoker(),
    };
  }
  return cached;
}

/** For tests and the local cloud, which change the environment between runs. */
export function resetFailoverIntegrations(integrations?: FailoverIntegrations): void {
  cached = integrations;
}
