import type { BenchScenario } from '../trial-env.ts';
import { blip } from './blip.ts';
import { crash } from './crash.ts';
import { hang } from './hang.ts';
import { probeHandover, probeRound } from './probe-round.ts';
import { proberPartition } from './prober-partition.ts';
import { replicaCrash } from './replica-crash.ts';
import { switchoverScenario } from './switchover.ts';

/** Every bench scenario by name (`npm run bench -- --scenario <name>`). */
export const SCENARIOS: Record<string, BenchScenario> = {
  crash,
  hang,
  blip,
  'prober-partition': proberPartition,
  'replica-crash': replicaCrash,
  switchover: switchoverScenario,
  'probe-round': probeRound,
  'probe-handover': probeHandover,
};
