// The EventBridge client, imported on first use (see eventbridge-publisher.ts): a static
// re-export keeps it tree-shaken.
export { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
