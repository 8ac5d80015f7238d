import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';

/** The detail-types we publish; rules in the account match on them. */
export type FailoverEventType =
  | 'MySQL Failover Started'
  | 'MySQL Failover Succeeded'
  | 'MySQL Failover Failed';

export interface FailoverEvent {
  type: FailoverEventType;
  cluster: string;
  detail: Record<string, unknown>;
}

export interface EventPublisher {
  /** Best effort: never throws (an audit hook must not fail a failover). */
  publish(event: FailoverEvent): Promise<void>;
}

/** Source of our events on the bus (rules: `{"source": ["mysql-failover"]}`). */
export const EVENT_SOURCE = 'mysql-failover';

/** PutEvents to one bus (the default bus unless configured). */
export class EventBridgePublisher implements EventPublisher {
  private client: EventBridgeClient | undefined;

  constructor(
    private readonly busName: string,
    options: { client?: EventBridgeClient; log?: (entry: Record<string, unknown>) => void } = {},
  ) {
    this.client = options.client;
    this.log = options.log ?? (() => {});
  }

  private readonly log: (entry: Record<string, unknown>) => void;

  async publish(event: FailoverEvent): Promise<void> {
    try {
      // The SDK is loaded on the first event, not at import (cold start).
      const sdk = await import('./sdk/eventbridge.ts');
      this.client ??= new sdk.EventBridgeClient({});
      const r = await this.client.send(
        new sdk.PutEventsCommand({
          Entries: [
            {
              EventBusName: this.busName,
              Source: EVENT_SOURCE,
              DetailType: event.type,
              Detail: JSON.stringify({ cluster: event.cluster, ...event.detail }),
            },
          ],
        }),
      );
      if ((r.FailedEntryCount ?? 0) > 0) {
        const e = r.Entries?.[0];
        this.log({
          level: 'error',
          type: 'event-publish-failed',
          cluster: event.cluster,
          error: `${e?.ErrorCode ?? 'Unknown'}: ${e?.ErrorMessage ?? ''}`,
        });
      }
    } catch (err) {
      this.log({
        level: 'error',
        type: 'event-publish-failed',
        cluster: event.cluster,
        error: `PutEvents to ${this.busName}: ${(err as Error).name}: ${(err as Error).message}`,
      });
    }
  }
}
