// The Lambda client, imported on first use (see lambda-hooks.ts): a static re-export keeps it
// tree-shaken.
export { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
