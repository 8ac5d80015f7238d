import { electCandidateStep } from '../../lib/failover/steps.ts';
import { defineTask } from '../define-task.ts';

/** The `ElectCandidate` state of the failover state machine. */
export const { plain, handler } = defineTask('ElectCandidate', electCandidateStep);
