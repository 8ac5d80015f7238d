/**
 * The functions of the packaged artifact as `serverless package` wrote them: each
 * `AWS::Lambda::Function` of the CloudFormation template with its Handler, Timeout, MemorySize,
 * Environment and the zip its Code points at (in .serverless/), unzipped once into a cache.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, normalize } from 'node:path';
import { inflateRawSync } from 'node:zlib';

export interface PackagedFunction {
  /** Logical id, e.g. HealthCheckLambdaFunction. */
  id: string;
  functionName: string;
  handler: string;
  runtime: string;
  timeoutMs: number;
  memoryMb: number;
  /** Environment.Variables as packaged: strings, or intrinsics (Ref, Fn::GetAtt) only AWS resolves. */
  env: Record<string, unknown>;
  zipPath: string;
}

interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
}

/** Every Lambda function of the template. Defaults as CloudFormation's: Timeout 3 s, MemorySize 128 MB. */
export function readPackagedFunctions(templatePath: string): PackagedFunction[] {
  const t = JSON.parse(readFileSync(templatePath, 'utf8')) as { Resources?: Record<string, CfnResource> };
  const dir = dirname(templatePath);
  const out: PackagedFunction[] = [];
  for (const [id, r] of Object.entries(t.Resources ?? {})) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const p = r.Properties ?? {};
    const code = (p.Code ?? {}) as { S3Key?: unknown };
    if (typeof code.S3Key !== 'string')
      throw new Error(`${id} in ${templatePath} has no Code.S3Key string: cannot find its zip`);
    const zipPath = join(dir, basename(code.S3Key));
    const vars = ((p.Environment ?? {}) as { Variables?: Record<string, unknown> }).Variables ?? {};
    out.push({
      id,
      functionName: typeof p.FunctionName === 'string' ? p.FunctionName : id,
      handler: String(p.Handler),
      runtime: String(p.Runtime),
      timeoutMs: Number(p.Timeout ?? 3) * 1000,
      memoryMb: Number(p.MemorySize ?? 128),
      env: vars,
      zipPath,
    });
  }
  return out;
}

/**
 * Unzips `zipPath` into `cacheRoot` (once per zip content: keyed by name, size and mtime) and
 * returns the directory, the function's LAMBDA_TASK_ROOT.
 */
export function unpackArtifact(zipPath: string, cacheRoot: string): string {
  if (!existsSync(zipPath))
    throw new Error(`The packaged zip ${zipPath} is missing: run \`serverless package\` (npm run package)`);
  const st = statSync(zipPath);
  const dir = join(cacheRoot, `${basename(zipPath, '.zip')}-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (existsSync(join(dir, '.unpacked'))) return dir;
  pruneOldArtifacts(cacheRoot, basename(zipPath, '.zip'));
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  extractZip(readFileSync(zipPath), tmp);
  writeFileSync(join(tmp, '.unpacked'), '');
  try {
    renameSync(tmp, dir);
  } catch {
    // Another process unpacked the same zip first.
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/**
 * Extracts a zip (stored or deflated entries, as serverless packages them) with no unzip binary,
 * which a fresh CI machine may not have. Reads the central directory, as unzip does.
 */
export function extractZip(zip: Buffer, into: string): void {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('Not a zip file: no end of central directory');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`Corrupt zip central directory at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLen = zip.readUInt16LE(at + 28);
    const extraLen = zip.readUInt16LE(at + 30);
    const commentLen = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLen);
    at += 46 + nameLen + extraLen + commentLen;
    const target = normalize(join(into, name));
    if (!target.startsWith(normalize(into))) throw new Error(`Zip entry ${name} escapes the target`);
    if (name.endsWith('/')) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    const dataAt = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(dataAt, dataAt + compressed);
    if (method !== 0 && method !== 8) throw new Error(`Zip entry ${name}: compression method ${method}`);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, method === 8 ? inflateRawSync(raw) : raw);
  }
}

// Earlier unpacked versions of the same zip, unused for an hour (a concurrent run may still use a
// recent one), so the cache holds about one copy per function.
function pruneOldArtifacts(cacheRoot: string, name: string): void {
  if (!existsSync(cacheRoot)) return;
  const pattern = new RegExp(`^${name}-\\d+-\\d+$`);
  for (const entry of readdirSync(cacheRoot)) {
    const p = join(cacheRoot, entry);
    if (pattern.test(entry) && Date.now() - statSync(p).mtimeMs > 3_600_000)
      rmSync(p, { recursive: true, force: true });
  }
}
