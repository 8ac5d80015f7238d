/** The dialect seam: one implementation per server family (see types.ts). */
export {
  checkFlavorMix,
  type DetectedFlavor,
  detectFlavor,
  type FlavorMixVerdict,
  type NodeVersion,
} from './flavor.ts';
export { mariadbDialect, parseMariadbReplicaRow } from './mariadb.ts';
export { mysql8Dialect, mysql57Dialect, parseMysqlReplicaRow } from './mysql.ts';
export { type MysqlRejoinInput, type MysqlRejoinPlan, planMysqlRejoin } from './rejoin-plan.ts';
export { sqlStringLiteral } from './sql-text.ts';
export type * from './types.ts';
export { type OperationWords, operationWords } from './vocabulary.ts';
