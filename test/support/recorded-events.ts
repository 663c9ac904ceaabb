import type { PositionedEvent } from '../../src/domain/ledger';
import type { RecordedEvent } from '../../src/eventstore/event-store';
import { LEDGER_STREAM, eventIdOf } from '../../src/eventstore/ledger-event-publisher';

/**
 * Appends one applied entry's events to `recorded` as the embedded event store would record them
 * (ledger stream, revisions and store positions counting on from what `recorded` holds): for tests
 * and benches that project events without a store.
 */
export function recordEntry(recorded: RecordedEvent[], timestampMs: number, events: readonly PositionedEvent[]): void {
  for (const { position, event } of events) {
    recorded.push({
      id: eventIdOf(position),
      streamId: LEDGER_STREAM,
      revision: BigInt(recorded.length),
      type: event.type,
      data: event.data as unknown as Record<string, unknown>,
      metadata: { position, timestampMs },
      storePosition: String(recorded.length + 1).padStart(19, '0'),
      createdAtMs: timestampMs,
    });
  }
}
