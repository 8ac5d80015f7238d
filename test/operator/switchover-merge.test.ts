import { describe, expect, it } from 'vitest';
import { mergeBranches, type SwitchoverContext } from '../../lib/operator/switchover-steps.ts';

const base: SwitchoverContext = {
  cluster: 'c',
  kind: 'switchover',
  failedPrimary: 'db1',
  expectedEpoch: 1,
  incidentId: 'i',
  executionName: 'c-switchover-e2',
  epoch: 2,
  candidate: 'db2',
  limits: { maxLagSeconds: 5, maxTransactionSeconds: 10, graceMs: 100, catchUpTimeoutSeconds: 10 },
  phase: 'prechecked',
};
const vipDone = { holder: 'db2', address: '10.0.0.9', ms: 900, alreadyThere: false };

describe('mergeBranches', () => {
  it('takes the progress from the writes branch and the VIP from the VIP branch', () => {
    const writes = { ...base, phase: 'caught-up' as const, promoted: true, promotedAt: 5, repointedAt: 7 };
    const vip = { ...base, vip: vipDone, vipVerifiedAt: 6 };
    const merged = mergeBranches({ ...base, branches: [writes, vip] });
    expect(merged).toEqual({ ...writes, vip: vipDone, vipVerifiedAt: 6 });
    expect(merged.branches).toBeUndefined();
    expect(merged.error).toBeUndefined();
  });

  it('keeps the writes branch error first and the VIP branch error beside it when both failed', () => {
    const writesError = { Error: 'SwitchoverCatchUpTimeoutError', Cause: 'late' };
    const vipError = { Error: 'VipMoveFailedError', Cause: 'denied' };
    const merged = mergeBranches({
      ...base,
      branches: [
        { ...base, phase: 'blocked', blockedAt: 3, error: writesError },
        { ...base, error: vipError },
      ],
    });
    expect(merged.error).toEqual(writesError);
    expect(merged.vipError).toEqual(vipError);
    expect(merged.phase).toBe('blocked');
    expect(merged.promoted).toBeUndefined();
  });

  it('reports the VIP branch error when only the VIP branch failed', () => {
    const vipError = { Error: 'VipNotVerifiedError', Cause: 'slow' };
    const writes = { ...base, promoted: true };
    const merged = mergeBranches({ ...base, branches: [writes, { ...base, error: vipError }] });
    expect(merged.error).toEqual(vipError);
    expect(merged.vipError).toBeUndefined();
    expect(merged.promoted).toBe(true);
    expect(merged.vip).toBeUndefined();
  });

  it('returns a context without branches unchanged', () => {
    expect(mergeBranches(base)).toBe(base);
  });
});
