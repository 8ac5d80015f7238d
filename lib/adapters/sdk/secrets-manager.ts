// The Secrets Manager client, imported on first use (see secrets.ts). A static re-export of the
// two names used keeps the SDK tree-shaken behind the dynamic import.
export { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
