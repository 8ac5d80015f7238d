/**
 * Last-resort cleanup for processes and directories the cluster harness creates.
 *
 * Two layers, because no single one covers every way the Node process can end:
 * - in-process hooks ('exit', SIGINT, SIGTERM, SIGHUP): synchronous kill + rm, covering normal
 *   exit, Ctrl-C, a test runner's SIGTERM and uncaught errors (an uncaught error ends the
 *   process, which emits 'exit');
 * - a detached shell watchdog per directory that polls our pid and, once we are gone (SIGKILL,
 *   OOM kill), kills every process whose command line names the directory and removes it.
 *   Only processes we started carry that unique mkdtemp path in their arguments.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';

export interface CleanupEntry {
  /** Pids currently alive that must die with the process. */
  pids(): number[];
  /** Process groups (helper scripts and their children) that must die with the process. */
  groups(): number[];
  /** Directory to remove after the processes are gone. */
  readonly dir: string;
  /** Extra synchronous teardown after the processes are killed (network namespaces, bridges). */
  teardownSync?: () => void;
}

const entries = new Set<CleanupEntry>();
let hooksInstalled = false;

/** Registers an entry for cleanup on process exit or a terminating signal. */
export function registerCleanup(entry: CleanupEntry): void {
  installHooks();
  entries.add(entry);
}

/** Removes an entry after its owner cleaned up by itself. */
export function unregisterCleanup(entry: CleanupEntry): void {
  entries.delete(entry);
}

/**
 * True while any thread of the process still exists. A SIGKILLed mariadbd's main thread turns
 * zombie before its other threads finish exiting, and until the last one is gone the listening
 * socket stays open (new connections get ECONNRESET instead of ECONNREFUSED).
 */
export function isProcessAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The state letter follows the parenthesised command name, which may itself contain spaces.
  const close = stat.lastIndexOf(')');
  const state = stat.slice(close + 2, close + 3);
  if (state !== 'Z' && state !== 'X') return true;
  try {
    return readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

/** Sends SIGCONT (a stopped process ignores nothing but cannot act on SIGKILL promptly otherwise) then SIGKILL. */
export function killHard(pid: number): void {
  for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Pids whose process group is `pgid` (field 5 of /proc/<pid>/stat). */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && isProcessAlive(Number(entry))) members.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/** SIGCONT + SIGKILL to a whole process group. */
export function killGroup(pgid: number): void {
  for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // group already empty
    }
  }
}

/**
 * Kills the entry's processes, waits briefly (synchronously) for them to vanish so that
 * they do not write into the directory while it is removed, then removes the directory.
 */
export function cleanupSync(entry: CleanupEntry): void {
  for (const group of entry.groups()) killGroup(group);
  const pids = [...entry.pids(), ...entry.groups().flatMap(groupMembers)];
  for (const pid of pids) killHard(pid);
  const deadline = Date.now() + 2000;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  while (pids.some(isProcessAlive) && Date.now() < deadline) Atomics.wait(sleeper, 0, 0, 10);
  entry.teardownSync?.();
  rmSync(entry.dir, { recursive: true, force: true });
}

function cleanupAll(): void {
  for (const entry of entries) {
    try {
      cleanupSync(entry);
    } catch {
      // keep going: the other entries must still be cleaned
    }
  }
  entries.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupAll();
      // Listening to a signal disables Node's default "terminate"; restore it when nobody
      // else listens, so Ctrl-C still ends the program.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

const WATCHDOG_SCRIPT = `
owner="$1"; dir="$2"
while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 0.5; done
[ -d "$dir" ] || exit 0
for p in /proc/[0-9]*; do
  pid="\${p#/proc/}"
  [ "$pid" = "$$" ] && continue
  if tr '\\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
    kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
  fi
done
sleep 0.5
rm -rf -- "$dir"
`;

/**
 * Starts a detached watchdog that cleans `dir` up if this Node process dies without running
 * its exit hooks (SIGKILL). It exits by itself once `dir` is removed. Returns its pid.
 */
export function startWatchdog(dir: string): number | undefined {
  const child = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'smf-cluster-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  child.on('error', () => {});
  child.unref();
  return child.pid;
}
