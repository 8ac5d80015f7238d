/**
 * What the emulated Cloud Assistant "runs": it never executes shell. It recognises, line by
 * line, the VIP scripts that lib/adapters/vip/aliyun-havip.ts sends (buildVipTakeoverScript /
 * buildVipReleaseScript) and applies their effect to the model; any other command fails the
 * invocation with exit code 127, so an adapter that drifts from the documented script shows up
 * as a failed move instead of a silent no-op.
 */
import type { AliyunModel } from './model.ts';

export interface ScriptResult {
  exitCode: number;
  output: string;
}

const IP = String.raw`(\d{1,3}(?:\.\d{1,3}){3})`;
const DEV = '([A-Za-z0-9_.:-]{1,15})';
const ADD_RE = new RegExp(
  String.raw`^ip -4 addr show dev ${DEV} \| grep -qF ' ${IP}/' \|\| ip addr add ${IP}/(\d{1,2}) dev ${DEV}$`,
);
const ARPING_RE = new RegExp(String.raw`^arping -q -U -c (\d+) -I ${DEV} ${IP} \|\| \[ \$\? -eq 1 \]$`);
const DEL_RE = new RegExp(String.raw`^ip addr del ${IP}/(\d{1,2}) dev ${DEV} 2>/dev/null \|\| true$`);

/** Applies a recognised VIP script to `instanceId` in the model; stops at the first failing line (set -e). */
export function runGuestScript(model: AliyunModel, instanceId: string, script: string): ScriptResult {
  const out: string[] = [];
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'set -eu') continue;
    let m = ADD_RE.exec(line);
    if (m) {
      const [, showDev, probeIp, ip, , addDev] = m;
      if (showDev !== addDev || probeIp !== ip)
        return { exitCode: 2, output: `${out.join('\n')}\nemulator: inconsistent ip addr line` };
      model.configureAddress(instanceId, ip!);
      out.push(`configured ${ip} on ${addDev}`);
      continue;
    }
    m = ARPING_RE.exec(line);
    if (m) {
      const [, count, dev, ip] = m;
      if (!model.instances.get(instanceId)?.configuredAddresses.has(ip!)) {
        // What arping -U says when the source address is not on the interface.
        return { exitCode: 2, output: `${out.join('\n')}\narping: bind: Cannot assign requested address` };
      }
      model.announce(instanceId, ip!);
      out.push(`Sent ${count} probes (${count} broadcast(s)) for ${ip} on ${dev}`);
      continue;
    }
    m = DEL_RE.exec(line);
    if (m) {
      const [, ip, , dev] = m;
      model.unconfigureAddress(instanceId, ip!);
      out.push(`removed ${ip} from ${dev}`);
      continue;
    }
    return {
      exitCode: 127,
      output: `${out.join('\n')}\nsh: emulator does not run this command: ${line.slice(0, 80)}`.trim(),
    };
  }
  return { exitCode: 0, output: out.join('\n') };
}

/** The instance's operating system, when the emulated Cloud Assistant really runs scripts (netns mode). */
export interface GuestHost {
  /** Runs argv on the instance (no shell) and collects its output. */
  exec(instanceId: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * Starts argv on the instance without waiting for it (arping blocks about a second per probe).
   * Resolves with its exit code if it ended within a short grace period, else undefined.
   */
  background(instanceId: string, argv: string[]): Promise<number | undefined>;
}

/**
 * Really runs a recognised VIP script on the instance's host, line by line as argv (never
 * through a shell), with the same strict grammar as {@link runGuestScript}: any other line fails
 * with 127 before anything runs. The model follows what really happened: the address is
 * configured once `ip addr add` succeeded, and MASTER follows the gratuitous ARP once arping is
 * on its way (it runs in the background, as the adapter's script accepts).
 */
export async function runGuestScriptOnHost(
  model: AliyunModel,
  instanceId: string,
  script: string,
  host: GuestHost,
): Promise<ScriptResult> {
  type Step =
    | { kind: 'add'; ip: string; prefix: string; dev: string }
    | { kind: 'arping'; ip: string; count: string; dev: string }
    | { kind: 'del'; ip: string; prefix: string; dev: string };
  const steps: Step[] = [];
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'set -eu') continue;
    let m = ADD_RE.exec(line);
    if (m) {
      const [, showDev, probeIp, ip, prefix, addDev] = m;
      if (showDev !== addDev || probeIp !== ip)
        return { exitCode: 2, output: 'emulator: inconsistent ip addr line' };
      steps.push({ kind: 'add', ip: ip!, prefix: prefix!, dev: addDev! });
      continue;
    }
    m = ARPING_RE.exec(line);
    if (m) {
      const [, count, dev, ip] = m;
      if (Number(count) < 1 || Number(count) > 10)
        return { exitCode: 2, output: `arping: bad count ${count}` };
      steps.push({ kind: 'arping', ip: ip!, count: count!, dev: dev! });
      continue;
    }
    m = DEL_RE.exec(line);
    if (m) {
      const [, ip, prefix, dev] = m;
      steps.push({ kind: 'del', ip: ip!, prefix: prefix!, dev: dev! });
      continue;
    }
    return { exitCode: 127, output: `sh: emulator does not run this command: ${line.slice(0, 80)}` };
  }
  const out: string[] = [];
  const fail = (code: number, text: string): ScriptResult => ({
    exitCode: code,
    output: [...out, text.trim()].join('\n').trim(),
  });
  for (const s of steps) {
    if (s.kind === 'add') {
      const shown = await host.exec(instanceId, ['ip', '-4', 'addr', 'show', 'dev', s.dev]);
      if (shown.code !== 0) return fail(shown.code, shown.stderr);
      if (!shown.stdout.includes(` ${s.ip}/`)) {
        const r = await host.exec(instanceId, ['ip', 'addr', 'add', `${s.ip}/${s.prefix}`, 'dev', s.dev]);
        if (r.code !== 0) return fail(r.code, r.stderr);
      }
      model.configureAddress(instanceId, s.ip);
      out.push(`configured ${s.ip} on ${s.dev}`);
    } else if (s.kind === 'arping') {
      const code = await host.background(instanceId, [
        'arping',
        '-q',
        '-U',
        '-c',
        s.count,
        '-I',
        s.dev,
        s.ip,
      ]);
      // 1 = no reply, normal for an announcement; 2 = a real error (e.g. the address is not here).
      if (code !== undefined && code > 1) return fail(code, `arping exited with ${code}`);
      model.announce(instanceId, s.ip);
      out.push(`arping -U ${s.ip} on ${s.dev} (${s.count} probes, background)`);
    } else {
      await host.exec(instanceId, ['ip', 'addr', 'del', `${s.ip}/${s.prefix}`, 'dev', s.dev]);
      model.unconfigureAddress(instanceId, s.ip);
      out.push(`removed ${s.ip} from ${s.dev}`);
    }
  }
  return { exitCode: 0, output: out.join('\n') };
}
