import type { BenchScenario } from '../trial-env.ts';
import { crash } from './crash.ts';

/** Every bench scenario by name (`npm run bench -- --scenario <name>`). */
export const SCENARIOS: Record<string, BenchScenario> = {
  crash,
};
