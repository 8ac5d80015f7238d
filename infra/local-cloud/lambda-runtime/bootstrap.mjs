// The runtime inside each local Lambda instance: a small client of the Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), the protocol Lambda's own
// Node.js runtime and the Runtime Interface Emulator speak. It runs on the Node 22 binary
// (nodejs22.x), in the instance's cgroup, with the function's packaged environment.
// Plain JavaScript on purpose: it must run as-is on a bare Node, like Lambda's bootstrap.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
const taskRoot = process.env.LAMBDA_TASK_ROOT;
const handlerSpec = process.env._HANDLER;

// As the Node.js runtime interface client serialises an error (errorType from error.name).
function toRapid(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    errorType: String(e.name ?? 'Error'),
    errorMessage: String(e.message ?? ''),
    trace: String(e.stack ?? '').split('\n'),
  };
}

async function post(path, body, errorType) {
  const headers = { 'content-type': 'application/json' };
  if (errorType) headers['lambda-runtime-function-error-type'] = errorType;
  await fetch(`${api}${path}`, { method: 'POST', headers, body: JSON.stringify(body ?? null) });
}

async function load() {
  const dot = handlerSpec.lastIndexOf('.');
  const file = handlerSpec.slice(0, dot);
  const name = handlerSpec.slice(dot + 1);
  for (const ext of ['.mjs', '.js', '.cjs']) {
    const path = join(taskRoot, file + ext);
    let mod;
    try {
      mod = await import(pathToFileURL(path).href);
    } catch (err) {
      // Only the handler file itself missing means "try the next extension"; a module it imports
      // that is missing (a chunk, a dependency) is the import error to report.
      if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`'${path}'`)) continue;
      throw err;
    }
    const fn = mod[name] ?? mod.default?.[name];
    if (typeof fn !== 'function') {
      const e = new Error(`${file}.${name} is undefined or not exported`);
      e.name = 'Runtime.HandlerNotFound';
      throw e;
    }
    return fn;
  }
  const e = new Error(`Error: Cannot find module '${file}'`);
  e.name = 'Runtime.ImportModuleError';
  throw e;
}

let handler;
try {
  handler = await load();
} catch (err) {
  await post('/init/error', toRapid(err), toRapid(err).errorType).catch(() => {});
  process.exit(1);
}

for (;;) {
  const res = await fetch(`${api}/invocation/next`);
  const requestId = res.headers.get('lambda-runtime-aws-request-id');
  const deadline = Number(res.headers.get('lambda-runtime-deadline-ms'));
  const event = await res.json();
  const context = {
    awsRequestId: requestId,
    invokedFunctionArn: res.headers.get('lambda-runtime-invoked-function-arn'),
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: '$LATEST',
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: `/aws/lambda/${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done() {},
    fail() {},
    succeed() {},
  };
  try {
    const result = await handler(event, context);
    await post(`/invocation/${requestId}/response`, result === undefined ? null : result);
  } catch (err) {
    const rapid = toRapid(err);
    await post(`/invocation/${requestId}/error`, rapid, rapid.errorType);
  }
}
