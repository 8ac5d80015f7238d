/** Reading values out of driver rows, the same way for every flavor. */
import type { Row } from './types.ts';

export const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
export const num = (v: unknown): number => (v === null || v === undefined || v === '' ? 0 : Number(v));
export const nullableNum = (v: unknown): number | null =>
  v === null || v === undefined || v === '' ? null : Number(v);
/** 1 / '1' / 'ON' / 'Yes' / true. */
export const flag = (v: unknown): boolean =>
  v === 1 || v === '1' || v === true || (typeof v === 'string' && /^(on|yes)$/i.test(v));

/** The first column present of several names (MySQL renamed Slave_/Master_ columns in 8.0.22). */
export function col(r: Row, ...names: string[]): unknown {
  for (const n of names) if (n in r) return r[n];
  return undefined;
}

/** SHOW GLOBAL VARIABLES / STATUS rows -> name -> value. */
export function nameValueRows(rows: readonly Row[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rows)
    out.set(str(col(r, 'Variable_name', 'VARIABLE_NAME')), str(col(r, 'Value', 'VARIABLE_VALUE')));
  return out;
}

export function ioState(v: unknown): 'Yes' | 'No' | 'Connecting' | 'Preparing' {
  const s = str(v);
  return s === 'Yes' || s === 'Connecting' || s === 'Preparing' ? s : 'No';
}
