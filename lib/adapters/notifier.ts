import type { SNSClient } from '@aws-sdk/client-sns';
import { boundedRequests } from './sdk/bounded.ts';

export interface Notification {
  cluster: string;
  subject: string;
  message: string;
  data?: Record<string, unknown>;
  severity: 'info' | 'warning' | 'critical';
}

export interface Notifier {
  notify(n: Notification): Promise<void>;
}

/** Structured log line on stdout, always; SNS when a topic is configured. Never throws. */
export class SnsNotifier implements Notifier {
  private client: SNSClient | undefined;

  constructor(
    private readonly topicArn: string | undefined,
    options: { client?: SNSClient; log?: (line: string) => void } = {},
  ) {
    this.client = options.client;
    this.log = options.log ?? ((l) => console.log(l));
  }

  private readonly log: (line: string) => void;

  async notify(n: Notification): Promise<void> {
    this.log(JSON.stringify({ level: n.severity, type: 'notification', ...n }));
    if (!this.topicArn) return;
    try {
      // The SDK is loaded on the first notification, not at import (cold start).
      const sdk = await import('./sdk/sns.ts');
      this.client ??= new sdk.SNSClient(boundedRequests());
      await this.client.send(
        new sdk.PublishCommand({
          TopicArn: this.topicArn,
          Subject: `[${n.severity}] ${n.cluster}: ${n.subject}`.slice(0, 99),
          Message: JSON.stringify(n, null, 2),
          MessageAttributes: {
            cluster: { DataType: 'String', StringValue: n.cluster },
            severity: { DataType: 'String', StringValue: n.severity },
          },
        }),
      );
    } catch (err) {
      this.log(
        JSON.stringify({
          level: 'error',
          type: 'notify-failed',
          cluster: n.cluster,
          error: (err as Error).name,
        }),
      );
    }
  }
}
