// The EC2 client of `check`'s ReplaceRoute dry run, imported on first use (lib/operator/check.ts):
// a static re-export keeps it tree-shaken.
export { EC2Client, ReplaceRouteCommand } from '@aws-sdk/client-ec2';
