import { VipMoveFailedError } from '../../lib/errors.ts';
import type { VipMoveOptions, VipMoveResult, VipMover } from '../../lib/ports.ts';

/**
 * The VipMover port in memory: holds the VIP on one node, moves it when asked, and can refuse
 * moves (as a provider refusing AssignPrivateIpAddresses would) for timelines like a failure
 * after promotion.
 */
export class FakeVipMover implements VipMover {
  readonly provider = 'fake';
  readonly moves: Array<{ to: string; options: VipMoveOptions }> = [];
  private refusal: Error | undefined;

  constructor(
    public holder: string | undefined,
    readonly address = '10.0.1.50',
  ) {}

  /** Every later move fails with `error` (default VipMoveFailedError) until `allow()`. */
  refuse(error: Error = new VipMoveFailedError(`Failed to move VIP ${this.address}: refused (fake)`)): void {
    this.refusal = error;
  }

  allow(): void {
    this.refusal = undefined;
  }

  async currentHolder(): Promise<string | undefined> {
    return this.holder;
  }

  async moveTo(nodeId: string, options: VipMoveOptions): Promise<VipMoveResult> {
    this.moves.push({ to: nodeId, options });
    if (this.refusal) throw this.refusal;
    const alreadyThere = this.holder === nodeId;
    this.holder = nodeId;
    return {
      provider: this.provider,
      address: this.address,
      holder: nodeId,
      alreadyThere,
      apiCalls: 1,
      ms: 0,
    };
  }
}
