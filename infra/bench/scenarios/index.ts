import type { BenchScenario } from '../trial-env.ts';
import { aliveDuringCatchup } from './alive-during-catchup.ts';
import { blip } from './blip.ts';
import { crash } from './crash.ts';
import {
  crashRestart,
  crashRestartLate,
  crashRestartLateReadOnlyCnf,
  crashRestartLateStonith,
  crashRestartStonith,
} from './crash-restart.ts';
import { crashUnderLoad } from './crash-under-load.ts';
import { failAfterPromote } from './fail-after-promote.ts';
import { hang } from './hang.ts';
import { hangReturn } from './hang-return.ts';
import { laggingCandidate } from './lagging-candidate.ts';
import { laggingSurvivors } from './lagging-survivors.ts';
import { probeHandover, probeRound } from './probe-round.ts';
import { proberPartition } from './prober-partition.ts';
import { quietPrimaryPartition } from './quiet-primary-partition.ts';
import { replicaCrash } from './replica-crash.ts';
import { scale } from './scale.ts';
import { switchoverScenario } from './switchover.ts';

/** Every bench scenario by name (`npm run bench -- --scenario <name>`). */
export const SCENARIOS: Record<string, BenchScenario> = {
  crash,
  hang,
  blip,
  'prober-partition': proberPartition,
  'replica-crash': replicaCrash,
  switchover: switchoverScenario,
  // Adversarial timelines (issue 11): each states what must hold in every trial.
  'hang-return': hangReturn,
  'crash-restart': crashRestart,
  'crash-restart-stonith': crashRestartStonith,
  'crash-restart-late': crashRestartLate,
  'crash-restart-late-ro-cnf': crashRestartLateReadOnlyCnf,
  'crash-restart-late-stonith': crashRestartLateStonith,
  'fail-after-promote': failAfterPromote,
  'lagging-survivors': laggingSurvivors,
  'alive-during-catchup': aliveDuringCatchup,
  'quiet-primary-partition': quietPrimaryPartition,
  'crash-under-load': crashUnderLoad,
  'lagging-candidate': laggingCandidate,
  'probe-round': probeRound,
  'probe-handover': probeHandover,
  scale,
};
