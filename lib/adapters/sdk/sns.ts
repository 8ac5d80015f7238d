// The SNS client, imported on first use (see notifier.ts): a static re-export keeps it tree-shaken.
export { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
