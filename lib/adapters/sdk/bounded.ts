/**
 * Client settings that keep any AWS request from hanging. The health check runs every cluster's
 * loop in one invocation with one lease heartbeat (lib/health/lease.ts): a loop stuck on a request
 * (a dead keep-alive socket, an endpoint that never answers) stops the renewals, so the whole
 * invocation lapses and its other clusters go unprobed until a take-over. Every client on that path
 * (state store, secrets, alerts, the failover start) is built with these settings: a socket idle for
 * `requestTimeoutMs` fails the attempt, and 3 attempts end well inside the 10 s that counts as stuck.
 *
 * Without `throwOnRequestTimeout` the SDK (smithy node-http-handler 4.x) only logs a warning when
 * `requestTimeout` passes and keeps waiting: measured, a hung request then never ends
 * (test/health/store-hang-isolation.test.ts).
 */
export function boundedRequests(requestTimeoutMs = 2000) {
  return {
    requestHandler: {
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
      connectionTimeout: 1000,
    },
    maxAttempts: 3,
  };
}
