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
