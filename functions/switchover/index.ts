import { plain as beginSwitchover } from './begin-switchover.ts';
import { plain as blockWrites } from './block-writes.ts';
import { plain as completeSwitchover } from './complete-switchover.ts';
import { plain as switchoverAborted } from './switchover-aborted.ts';
import { plain as switchoverJoin } from './switchover-join.ts';
import { plain as switchoverMoveVip } from './switchover-move-vip.ts';
import { plain as switchoverPreCheck } from './switchover-pre-check.ts';
import { plain as switchoverPromote } from './switchover-promote.ts';
import { plain as switchoverRepoint } from './switchover-repoint.ts';
import { plain as waitCandidateCaughtUp } from './wait-candidate-caught-up.ts';

/** Task state name -> plain handler of the switchover state machine. */
export const switchoverTaskHandlers: Record<string, (input: never) => Promise<unknown>> = {
  BeginSwitchover: beginSwitchover,
  SwitchoverPreCheck: switchoverPreCheck,
  BlockWrites: blockWrites,
  WaitCandidateCaughtUp: waitCandidateCaughtUp,
  SwitchoverPromote: switchoverPromote,
  SwitchoverRepoint: switchoverRepoint,
  SwitchoverMoveVip: switchoverMoveVip,
  SwitchoverJoin: switchoverJoin,
  CompleteSwitchover: completeSwitchover,
  SwitchoverAborted: switchoverAborted,
};
