// The Step Functions client of the failover starter, imported on first use (see sfn-starter.ts):
// a static re-export keeps it tree-shaken.
export { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
