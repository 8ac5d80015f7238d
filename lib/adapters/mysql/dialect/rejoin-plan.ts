/**
 * Whether a MySQL node may rejoin a primary as a replica, decided on GTID sets alone (pure).
 *
 * - errant = GTID_SUBTRACT(node gtid_executed, primary gtid_executed): transactions only the
 *   node has. Replicating would keep them forever and a later promotion of this node would
 *   serve them to everyone. They block the rejoin.
 * - missing = GTID_SUBTRACT(primary gtid_executed, node gtid_executed): what auto-positioning
 *   will fetch. If part of it is in the primary's gtid_purged, the binary logs holding it are
 *   gone and the IO thread would stop with error 1236: the node must be rebuilt.
 */
import {
  describeGtidSet,
  formatGtidSet,
  gtidSetCount,
  gtidSetIntersect,
  gtidSetSubtract,
} from '../../../core/gtid-set.ts';
import { atLeast } from './mysql.ts';
import type { ServerVersion } from './types.ts';

export interface MysqlRejoinInput {
  nodeId: string;
  primaryId: string;
  /** The node's @@gtid_executed. */
  nodeExecuted: string;
  /** The primary's @@gtid_executed. */
  primaryExecuted: string;
  /** The primary's @@gtid_purged. */
  primaryPurged: string;
  /** The node's version (decides RESET MASTER vs RESET BINARY LOGS AND GTIDS, and clone). */
  nodeVersion: ServerVersion;
}

export type MysqlRejoinPlan =
  /** Follow the primary with auto-position; `missing` is what it will fetch. */
  | { kind: 'follow'; missing: string; missingCount: number }
  | { kind: 'errant'; errant: string; errantCount: number; reason: string; options: string[] }
  | { kind: 'purged'; needed: string; reason: string; options: string[] };

/** Decides a MySQL node's rejoin; see the module comment for the rules. */
export function planMysqlRejoin(input: MysqlRejoinInput): MysqlRejoinPlan {
  const errant = gtidSetSubtract(input.nodeExecuted, input.primaryExecuted);
  const options = rebuildOptions(input);
  if (gtidSetCount(errant) > 0) {
    return {
      kind: 'errant',
      errant: formatGtidSet(errant),
      errantCount: gtidSetCount(errant),
      reason:
        `${input.nodeId} has errant transactions the primary ${input.primaryId} does not have ` +
        `(GTID_SUBTRACT(${input.nodeId}.gtid_executed, ${input.primaryId}.gtid_executed) = ${describeGtidSet(errant)}). ` +
        'Replicating would keep them; the node must be rebuilt from the primary.',
      options,
    };
  }
  const missing = gtidSetSubtract(input.primaryExecuted, input.nodeExecuted);
  const gone = gtidSetIntersect(missing, input.primaryPurged);
  if (gtidSetCount(gone) > 0) {
    return {
      kind: 'purged',
      needed: formatGtidSet(gone),
      reason:
        `${input.nodeId} lacks transactions the primary ${input.primaryId} already purged from its binary logs ` +
        `(${describeGtidSet(gone)}): auto-positioning would stop with error 1236. The node must be rebuilt.`,
      options,
    };
  }
  return { kind: 'follow', missing: formatGtidSet(missing), missingCount: gtidSetCount(missing) };
}

function rebuildOptions(input: MysqlRejoinInput): string[] {
  const reset = atLeast(input.nodeVersion, 8, 2, 0) ? 'RESET BINARY LOGS AND GTIDS' : 'RESET MASTER';
  const out = [
    `Rebuild ${input.nodeId}: stop it from taking writes, run ${reset} on it (drops its binary logs and GTID ` +
      `history), load a consistent copy of ${input.primaryId} (mysqldump --single-transaction ` +
      '--set-gtid-purged=ON, or MySQL Shell dump/load, which set gtid_purged), then follow the primary with ' +
      'auto-position.',
  ];
  if (atLeast(input.nodeVersion, 8, 0, 17)) {
    out.push(
      `Clone (MySQL 8.0.17+, the same version on both nodes): rejoin with "rebuild": true runs CLONE INSTANCE FROM on ${input.nodeId} ` +
        `against ${input.primaryId} (clone plugin on both nodes, BACKUP_ADMIN and CLONE_ADMIN for the admin account); it replaces ` +
        'the data and the GTID history and restarts the node; run rejoin again (no rebuild) once it is up, and it follows the primary with auto-position.',
    );
  }
  out.push(
    `Do not only ${reset} or set gtid_purged on ${input.nodeId}: its data would still hold the changes of the errant ` +
      'or missing transactions.',
  );
  return out;
}
