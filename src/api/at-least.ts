import { GraphQLError } from 'graphql';
import { parsePosition } from '../domain/position';
import { WaitersFullError } from '../projections/position-waiters';
import type { LedgerApi } from './schema';

/** How long a query with `atLeast` waits for the read models. */
export const AT_LEAST_WAIT_MS = 10_000;
/** Distinct `atLeast` positions one request may wait for (the same position on many fields is one wait). */
export const AT_LEAST_WAITS_PER_REQUEST_MAX_DEFAULT = 4;

/**
 * The `atLeast` waits of one request. A position beyond the log's last assigned index is refused at
 * once (no write of this ledger can have returned it, so waiting would only hold a slot until the
 * timeout); fields that name the same position share one wait; a request may wait for at most
 * `perRequestMax` distinct positions.
 */
export class RequestAtLeastWaits {
  private readonly waits = new Map<string, Promise<boolean>>();

  constructor(
    private readonly ledger: LedgerApi,
    private readonly perRequestMax: number = AT_LEAST_WAITS_PER_REQUEST_MAX_DEFAULT,
    private readonly timeoutMs: number = AT_LEAST_WAIT_MS,
  ) {}

  /** Resolves once the read models include `position`; throws a GraphQLError that says why not. */
  async wait(position: string): Promise<void> {
    let wait = this.waits.get(position);
    if (!wait) {
      const { index } = parsePosition(position);
      const status = this.ledger.consensusStatus();
      const lastAssignedIndex = Math.max(status.commitIndex, status.appliedIndex);
      if (index > lastAssignedIndex) {
        throw new GraphQLError(
          `atLeast ${position} is beyond the log's last assigned index ${lastAssignedIndex}: pass a position returned by this ledger`,
          { extensions: { code: 'BAD_USER_INPUT' } },
        );
      }
      if (this.waits.size >= this.perRequestMax) {
        throw new GraphQLError(`a request may wait for at most ${this.perRequestMax} distinct atLeast positions; pass the newest position once per field`, {
          extensions: { code: 'BAD_USER_INPUT' },
        });
      }
      wait = this.ledger.waitForPosition(position, this.timeoutMs);
      this.waits.set(position, wait);
    }
    let reached: boolean;
    try {
      reached = await wait;
    } catch (error) {
      if (error instanceof WaitersFullError) {
        throw new GraphQLError(`too many reads are waiting for positions (${error.waitersMax}); retry shortly`, {
          extensions: { code: 'OVERLOADED', retryable: true },
        });
      }
      throw error;
    }
    if (!reached) {
      throw new GraphQLError(`the read models did not reach position ${position} within ${this.timeoutMs} ms; retry shortly`, {
        extensions: { code: 'POSITION_NOT_REACHED', retryable: true },
      });
    }
  }
}

/** Per-request waits, made on first use and keyed by the request's context object. */
const requestWaits = new WeakMap<object, RequestAtLeastWaits>();
/** Waits for `atLeast` (when given) on behalf of the request whose context is `ctx`. */
export async function waitForAtLeast(ctx: { ledger: LedgerApi }, atLeast: string | null | undefined): Promise<void> {
  if (atLeast == null) return;
  let waits = requestWaits.get(ctx);
  if (!waits) {
    waits = new RequestAtLeastWaits(ctx.ledger, ctx.ledger.atLeastWaitsPerRequestMax);
    requestWaits.set(ctx, waits);
  }
  await waits.wait(atLeast);
}
