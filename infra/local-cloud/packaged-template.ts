import { readFileSync } from 'node:fs';

/** A state machine as `serverless package` wrote it, with every intrinsic resolved to local strings. */
export interface PackagedStateMachine {
  /** CloudFormation logical id of the `AWS::StepFunctions::StateMachine` resource. */
  logicalId: string;
  /** `StateMachineName` if the service set one (serverless.yml `name:`), else undefined. */
  name: string | undefined;
  /** The parsed Amazon States Language definition, ready for aws-local-stepfunctions. */
  definition: object;
  /** Task state name -> resolved `Resource` string, nested Parallel branches and Map processors included. */
  taskResources: Record<string, string>;
}

/** Where the resolved ARNs point: the emulated account, not a real one. */
export interface ResolveOptions {
  region?: string;
  accountId?: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface CfnResource {
  Type: string;
  Properties?: JsonObject;
}

interface CfnTemplate {
  Resources?: Record<string, CfnResource>;
  Parameters?: Record<string, { Default?: Json }>;
}

interface ResolveContext {
  region: string;
  accountId: string;
  resources: Record<string, CfnResource>;
  parameters: Record<string, { Default?: Json }>;
  /** `${Name}` placeholders CloudFormation leaves alone because Step Functions substitutes them later. */
  deferred: ReadonlySet<string>;
  /** The template path, so every error names the file it came from. */
  source: string;
}

// Marks `AWS::NoValue` so the enclosing object drops the key, as CloudFormation does.
const NO_VALUE = Symbol('AWS::NoValue');

/**
 * Reads the CloudFormation template written by `serverless package`
 * (`.serverless/cloudformation-template-update-stack.json`) and returns every
 * `AWS::StepFunctions::StateMachine` in it, keyed by logical id.
 *
 * serverless-step-functions 3.31 writes `DefinitionString` as a plain JSON string, as
 * `{"Fn::Sub": "<json>"}` or as `{"Fn::Sub": ["<json with ${Token}>", {Token: {"Fn::GetAtt": [..]}}]}`;
 * hand-written templates may also use `Fn::Join`, a `Definition` object and `DefinitionSubstitutions`.
 * All of them are resolved the way CloudFormation would, except that resource references become
 * local ARNs: a Lambda function `XxxLambdaFunction` (by `Ref` or `Fn::GetAtt .Arn`) becomes
 * `arn:aws:lambda:<region>:<account>:function:XxxLambdaFunction`, and pseudo-parameters such as
 * `${AWS::Region}` become the given region/account (default us-east-1 / 000000000000).
 *
 * @throws Error when the template has no state machine resolvable to JSON, or uses an intrinsic
 *   function that cannot be resolved locally (Fn::ImportValue, conditions, ...).
 */
export function loadPackagedStateMachines(
  templatePath: string,
  options: ResolveOptions = {},
): Record<string, PackagedStateMachine> {
  const template = JSON.parse(readFileSync(templatePath, 'utf8')) as CfnTemplate;
  const resources = template.Resources ?? {};
  const result: Record<string, PackagedStateMachine> = {};
  for (const [logicalId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const props = resource.Properties ?? {};
    const substitutions = isObject(props.DefinitionSubstitutions) ? props.DefinitionSubstitutions : {};
    const ctx: ResolveContext = {
      region: options.region ?? 'us-east-1',
      accountId: options.accountId ?? '000000000000',
      resources,
      parameters: template.Parameters ?? {},
      deferred: new Set(Object.keys(substitutions)),
      source: templatePath,
    };
    const definition = resolveDefinition(logicalId, props, substitutions, ctx);
    const name = props.StateMachineName === undefined ? undefined : resolve(props.StateMachineName, ctx);
    if (name !== undefined && typeof name !== 'string') {
      throw new Error(`${templatePath}: StateMachineName of ${logicalId} does not resolve to a string`);
    }
    result[logicalId] = { logicalId, name, definition, taskResources: collectTaskResources(definition) };
  }
  return result;
}

/**
 * Maps every Task state name of an ASL definition to its `Resource`, walking Parallel branches and
 * Map `Iterator`/`ItemProcessor` definitions, so callers can check that each Task has a handler.
 */
export function collectTaskResources(definition: object): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (machine: unknown): void => {
    if (!isObject(machine) || !isObject(machine.States)) return;
    for (const [stateName, state] of Object.entries(machine.States)) {
      if (!isObject(state)) continue;
      if (state.Type === 'Task') {
        found[stateName] =
          typeof state.Resource === 'string' ? state.Resource : JSON.stringify(state.Resource);
      }
      if (Array.isArray(state.Branches)) for (const branch of state.Branches) walk(branch);
      walk(state.Iterator);
      walk(state.ItemProcessor);
    }
  };
  walk(definition);
  return found;
}

function resolveDefinition(
  logicalId: string,
  props: JsonObject,
  substitutions: JsonObject,
  ctx: ResolveContext,
): object {
  let text: string;
  if (props.DefinitionString !== undefined) {
    const resolved = resolve(props.DefinitionString, ctx);
    if (typeof resolved !== 'string') {
      throw new Error(`${ctx.source}: DefinitionString of ${logicalId} does not resolve to a string`);
    }
    text = resolved;
  } else if (props.Definition !== undefined) {
    text = JSON.stringify(resolve(props.Definition, ctx));
  } else {
    throw new Error(`${ctx.source}: ${logicalId} has neither DefinitionString nor Definition`);
  }
  // Step Functions applies DefinitionSubstitutions after CloudFormation, as plain text.
  for (const [key, value] of Object.entries(substitutions)) {
    const resolved = resolve(value, { ...ctx, deferred: new Set() });
    const replacement = typeof resolved === 'string' ? resolved : JSON.stringify(resolved);
    text = text.replaceAll(`\${${key}}`, replacement);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
    // A definition given as a YAML string is packaged as a JSON string holding JSON.
    if (typeof parsed === 'string') parsed = JSON.parse(parsed);
  } catch (error) {
    throw new Error(`${ctx.source}: the resolved definition of ${logicalId} is not valid JSON`, {
      cause: error,
    });
  }
  if (!isObject(parsed)) throw new Error(`${ctx.source}: the definition of ${logicalId} is not an object`);
  return parsed;
}

function resolve(node: Json | undefined, ctx: ResolveContext): Json | typeof NO_VALUE {
  if (node === undefined) return NO_VALUE;
  if (Array.isArray(node)) {
    return node.map((item) => resolve(item, ctx)).filter((item): item is Json => item !== NO_VALUE);
  }
  if (!isObject(node)) return node;
  const keys = Object.keys(node);
  const only = keys.length === 1 ? keys[0] : undefined;
  if (only === 'Ref') return resolveRef(expectString(node.Ref, 'Ref', ctx), ctx);
  if (only === 'Fn::GetAtt') return resolveGetAtt(node['Fn::GetAtt'] as Json, ctx);
  if (only === 'Fn::Sub') return resolveSub(node['Fn::Sub'] as Json, ctx);
  if (only === 'Fn::Join') return resolveJoin(node['Fn::Join'] as Json, ctx);
  if (only === 'Fn::Select') return resolveSelect(node['Fn::Select'] as Json, ctx);
  if (only === 'Fn::Split') return resolveSplit(node['Fn::Split'] as Json, ctx);
  if (only?.startsWith('Fn::')) {
    throw new Error(`${ctx.source}: ${only} cannot be resolved locally`);
  }
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    const resolved = resolve(value, ctx);
    if (resolved !== NO_VALUE) out[key] = resolved;
  }
  return out;
}

function resolveRef(name: string, ctx: ResolveContext): Json | typeof NO_VALUE {
  const pseudo = resolvePseudoParameter(name, ctx);
  if (pseudo !== undefined) return pseudo;
  if (name === 'AWS::NoValue') return NO_VALUE;
  const parameter = ctx.parameters[name];
  if (parameter !== undefined) {
    if (parameter.Default === undefined) {
      throw new Error(`${ctx.source}: parameter ${name} has no Default to resolve locally`);
    }
    return parameter.Default;
  }
  const resource = ctx.resources[name];
  if (resource === undefined) throw new Error(`${ctx.source}: Ref to unknown resource ${name}`);
  return refOf(name, resource, ctx);
}

function resolveGetAtt(args: Json, ctx: ResolveContext): Json {
  const [logicalId, attribute] = typeof args === 'string' ? splitOnce(args, '.') : (args as Json[]);
  const id = expectString(logicalId, 'Fn::GetAtt', ctx);
  const attr = expectString(attribute, 'Fn::GetAtt', ctx);
  const resource = ctx.resources[id];
  if (resource === undefined) throw new Error(`${ctx.source}: Fn::GetAtt on unknown resource ${id}`);
  if (attr === 'Arn') return arnOf(id, resource, ctx);
  if (attr === 'Name' || attr === 'TopicName' || attr === 'QueueName') return physicalName(id, resource);
  throw new Error(`${ctx.source}: Fn::GetAtt ${id}.${attr} cannot be resolved locally`);
}

function resolveSub(args: Json, ctx: ResolveContext): string {
  const [text, vars] = Array.isArray(args) ? args : [args, {}];
  const body = expectString(text, 'Fn::Sub', ctx);
  const variables = isObject(vars) ? vars : {};
  return body.replace(/\$\{([^}]*)\}/g, (whole, inner: string) => {
    // `${!Literal}` is CloudFormation's escape for a literal `${Literal}`.
    if (inner.startsWith('!')) return `\${${inner.slice(1)}}`;
    const name = inner.trim();
    if (name in variables) return stringify(resolve(variables[name], ctx), name, ctx);
    if (ctx.deferred.has(name)) return whole;
    const pseudo = resolvePseudoParameter(name, ctx);
    if (pseudo !== undefined) return pseudo;
    if (name in ctx.parameters || name in ctx.resources) return stringify(resolveRef(name, ctx), name, ctx);
    const dot = name.indexOf('.');
    if (dot > 0) return stringify(resolveGetAtt(name, ctx), name, ctx);
    throw new Error(`${ctx.source}: Fn::Sub variable \${${name}} is not defined`);
  });
}

function resolveJoin(args: Json, ctx: ResolveContext): string {
  if (!Array.isArray(args) || args.length !== 2) throw new Error(`${ctx.source}: malformed Fn::Join`);
  const delimiter = expectString(args[0], 'Fn::Join', ctx);
  const list = resolve(args[1], ctx);
  if (!Array.isArray(list)) throw new Error(`${ctx.source}: Fn::Join needs a list`);
  return list.map((item) => stringify(item, 'Fn::Join', ctx)).join(delimiter);
}

function resolveSelect(args: Json, ctx: ResolveContext): Json {
  if (!Array.isArray(args) || args.length !== 2) throw new Error(`${ctx.source}: malformed Fn::Select`);
  const index = Number(resolve(args[0], ctx));
  const list = resolve(args[1], ctx);
  if (!Array.isArray(list) || list[index] === undefined) {
    throw new Error(`${ctx.source}: Fn::Select index ${index} is out of range`);
  }
  return list[index];
}

function resolveSplit(args: Json, ctx: ResolveContext): Json {
  if (!Array.isArray(args) || args.length !== 2) throw new Error(`${ctx.source}: malformed Fn::Split`);
  const delimiter = expectString(args[0], 'Fn::Split', ctx);
  return stringify(resolve(args[1], ctx), 'Fn::Split', ctx).split(delimiter);
}

function resolvePseudoParameter(name: string, ctx: ResolveContext): string | undefined {
  switch (name) {
    case 'AWS::Region':
      return ctx.region;
    case 'AWS::AccountId':
      return ctx.accountId;
    case 'AWS::Partition':
      return 'aws';
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::StackName':
      return 'local-stack';
    case 'AWS::StackId':
      return `arn:aws:cloudformation:${ctx.region}:${ctx.accountId}:stack/local-stack/local`;
    default:
      return undefined;
  }
}

// What `Ref` returns per resource type. Lambda functions deliberately give the ARN, not the
// name CloudFormation would give: a Task `Resource` must be an ARN for aws-local-stepfunctions.
function refOf(logicalId: string, resource: CfnResource, ctx: ResolveContext): string {
  switch (resource.Type) {
    case 'AWS::Lambda::Function':
    case 'AWS::StepFunctions::StateMachine':
    case 'AWS::SNS::Topic':
    case 'AWS::Lambda::Version':
      return arnOf(logicalId, resource, ctx);
    case 'AWS::SQS::Queue':
      return `https://sqs.${ctx.region}.amazonaws.com/${ctx.accountId}/${physicalName(logicalId, resource)}`;
    default:
      return physicalName(logicalId, resource);
  }
}

function arnOf(logicalId: string, resource: CfnResource, ctx: ResolveContext): string {
  const { region, accountId } = ctx;
  const name = physicalName(logicalId, resource);
  switch (resource.Type) {
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${region}:${accountId}:function:${logicalId}`;
    case 'AWS::Lambda::Version': {
      // A published version is the function ARN with a qualifier; locally there is only one.
      const fn = resource.Properties?.FunctionName;
      const target = isObject(fn) && typeof fn.Ref === 'string' ? fn.Ref : logicalId;
      return `arn:aws:lambda:${region}:${accountId}:function:${target}:1`;
    }
    case 'AWS::StepFunctions::StateMachine':
      return `arn:aws:states:${region}:${accountId}:stateMachine:${name}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${region}:${accountId}:${name}`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${region}:${accountId}:${name}`;
    case 'AWS::DynamoDB::Table':
      return `arn:aws:dynamodb:${region}:${accountId}:table/${name}`;
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${accountId}:role/${name}`;
    default: {
      const service = resource.Type.split('::')[1]?.toLowerCase() ?? 'unknown';
      return `arn:aws:${service}:${region}:${accountId}:${logicalId}`;
    }
  }
}

function physicalName(logicalId: string, resource: CfnResource): string {
  const props = resource.Properties ?? {};
  for (const key of ['StateMachineName', 'TopicName', 'QueueName', 'TableName', 'RoleName']) {
    const value = props[key];
    if (typeof value === 'string') return value;
  }
  return logicalId;
}

function stringify(value: Json | typeof NO_VALUE, what: string, ctx: ResolveContext): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`${ctx.source}: ${what} does not resolve to a string`);
}

function expectString(value: Json | undefined, what: string, ctx: ResolveContext): string {
  if (typeof value !== 'string') throw new Error(`${ctx.source}: malformed ${what}`);
  return value;
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + separator.length)];
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An EventBridge rule with an event pattern, as packaged, its intrinsics resolved. */
export interface PackagedEventRule {
  logicalId: string;
  pattern: Record<string, unknown>;
  /** CloudFormation logical ids of the Lambda functions it targets. */
  targetFunctions: string[];
}

/**
 * Every `AWS::Events::Rule` with an `EventPattern` in the packaged template (schedules are left
 * to the scheduler), with the pattern resolved as CloudFormation would and each Lambda target
 * given by its function's logical id, so the local EventBridge delivers exactly what is deployed.
 */
export function loadPackagedEventRules(
  templatePath: string,
  options: ResolveOptions = {},
): PackagedEventRule[] {
  const template = JSON.parse(readFileSync(templatePath, 'utf8')) as CfnTemplate;
  const resources = template.Resources ?? {};
  const ctx: ResolveContext = {
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '000000000000',
    resources,
    parameters: template.Parameters ?? {},
    deferred: new Set(),
    source: templatePath,
  };
  const rules: PackagedEventRule[] = [];
  for (const [logicalId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Events::Rule' || resource.Properties?.EventPattern === undefined) continue;
    let pattern = resolve(resource.Properties.EventPattern, ctx);
    if (typeof pattern === 'string') pattern = JSON.parse(pattern) as Json;
    if (!isObject(pattern)) throw new Error(`${templatePath}: EventPattern of ${logicalId} is not an object`);
    const targets = resolve(resource.Properties.Targets ?? [], ctx);
    const targetFunctions = (Array.isArray(targets) ? targets : [])
      .map((t) => (isObject(t) && typeof t.Arn === 'string' ? t.Arn : ''))
      .filter((arn) => arn.startsWith('arn:aws:lambda:'))
      .map((arn) => arn.split(':')[6] ?? '');
    rules.push({ logicalId, pattern, targetFunctions });
  }
  return rules;
}
