/** The decision core: pure functions over probe snapshots. No SQL, SDK or clock in here. */
export * from './analyze-topology.ts';
export * from './confirm-failure.ts';
export type * from './decision-types.ts';
export * from './elect-candidate.ts';
export * from './gtid.ts';
export * from './gtid-set.ts';
export type * from './types.ts';
