import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import {
  MaxAppendSizeExceededError,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type JSONEventData,
  type Position,
  type ReadPosition,
  type ReadRevision,
  type SubscribeToAllOptions,
} from '@eventstore/db-client';

// ---------------------------------------------------------------------------------------------
// An in-memory imitation of the EventStoreDB client, only the calls the adapter makes, with the
// server's documented behaviour: reads from a position include it, subscriptions start after it,
// readAll has no filter, subscribeToAll filters on the event type, system events are interleaved,
// a missing stream fails the read with StreamNotFoundError, and no duplicate-id de-duplication (as
// when the re-append falls outside the server's window).

interface FakeRecord {
  streamId: string;
  id: string;
  isJson: true;
  revision: bigint;
  type: string;
  created: Date;
  data: Record<string, unknown>;
  metadata: Record<string, unknown> | undefined;
  position: Position;
}

type FakeSubscription = PassThrough & { unsubscribe(): Promise<void> };

export class FakeEventStoreDbClient {
  /** Appends refused so far for exceeding maxAppendSizeBytes. */
  refusedForSize = 0;
  /** Sizes (bytes of data + metadata) of the appends accepted. */
  readonly appendSizes: number[] = [];

  /** Like the server's MaxAppendSize (1 MiB by default): an append whose events' data and metadata exceed it is refused. */
  constructor(private readonly maxAppendSizeBytes = Number.POSITIVE_INFINITY) {}

  private readonly log: FakeRecord[] = [];
  private readonly streams = new Map<string, FakeRecord[]>();
  private readonly live = new Set<{ subscription: FakeSubscription; typeFilter: RegExp | null }>();
  private logPosition = 1000n;

  async appendToStream(
    streamName: string,
    events: JSONEventData[],
    options: { expectedRevision?: AppendExpectedRevision } = {},
  ): Promise<{ success: true; nextExpectedRevision: bigint; position: Position }> {
    await Promise.resolve();
    const size = events.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e.data)) + Buffer.byteLength(JSON.stringify(e.metadata ?? {})), 0);
    if (size > this.maxAppendSizeBytes) {
      this.refusedForSize += 1;
      throw new MaxAppendSizeExceededError(undefined, this.maxAppendSizeBytes);
    }
    const stream = this.streams.get(streamName) ?? [];
    const current = stream.length === 0 ? 'no_stream' : BigInt(stream.length - 1);
    const expected = options.expectedRevision ?? 'any';
    const holds =
      expected === 'any' ||
      (expected === 'no_stream' && current === 'no_stream') ||
      (expected === 'stream_exists' && current !== 'no_stream') ||
      (typeof expected === 'bigint' && current === expected);
    if (!holds) throw new WrongExpectedVersionError(undefined, { streamName, expected, current });
    let last: FakeRecord | undefined;
    for (const event of events) {
      last = this.record(
        streamName,
        event.id,
        event.type,
        event.data as Record<string, unknown>,
        event.metadata as Record<string, unknown> | undefined,
      );
    }
    // The server writes its own events too: a $-typed link and an event in a $-stream.
    this.record(`$ce-${streamName.split('-')[0] ?? ''}`, randomUUID(), '$>', {}, undefined);
    this.record('$stats-fake', randomUUID(), 'StatsCollected', {}, undefined);
    if (last === undefined) throw new Error('the fake needs at least one event');
    this.appendSizes.push(size);
    return { success: true, nextExpectedRevision: last.revision, position: last.position };
  }

  readStream(
    streamName: string,
    options: { direction?: 'forwards' | 'backwards'; fromRevision?: ReadRevision; maxCount?: number | bigint } = {},
  ): AsyncIterable<{ event: FakeRecord }> {
    const stream = this.streams.get(streamName);
    const forwards = (options.direction ?? 'forwards') === 'forwards';
    const maxCount = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
    const from = options.fromRevision ?? (forwards ? 'start' : 'end');
    return (async function* read() {
      await Promise.resolve();
      if (stream === undefined) throw new StreamNotFoundError(undefined, streamName);
      const selected = forwards
        ? stream.filter((event) => from === 'start' || (from !== 'end' && event.revision >= from))
        : [...stream].reverse().filter((event) => from === 'end' || (from !== 'start' && event.revision <= from));
      for (const event of selected.slice(0, maxCount)) yield { event };
    })();
  }

  readAll(options: { fromPosition?: ReadPosition; maxCount?: number | bigint } = {}): AsyncIterable<AllStreamResolvedEvent> {
    const from = options.fromPosition ?? 'start';
    const maxCount = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
    const selected = this.log.filter((event) => from === 'start' || (from !== 'end' && !isBefore(event.position, from)));
    return (async function* read() {
      await Promise.resolve();
      for (const event of selected.slice(0, maxCount)) yield { event };
    })();
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): FakeSubscription {
    const subscription = Object.assign(new PassThrough({ objectMode: true }), {
      unsubscribe: async (): Promise<void> => {
        this.live.delete(entry);
      },
    });
    const filter = options.filter;
    const entry = { subscription, typeFilter: filter !== undefined && 'regex' in filter ? new RegExp(filter.regex) : null };
    const from = options.fromPosition ?? 'start';
    // Like the server: the catch-up part arrives asynchronously, then live events follow in order.
    setImmediate(() => {
      for (const event of this.log) {
        if (from === 'start' || (from !== 'end' && isBefore(from, event.position))) this.push(entry, event);
      }
      this.live.add(entry);
    });
    return subscription;
  }

  async dispose(): Promise<void> {
    this.live.clear();
  }

  private record(
    streamId: string,
    id: string,
    type: string,
    data: Record<string, unknown>,
    metadata: Record<string, unknown> | undefined,
  ): FakeRecord {
    const stream = this.streams.get(streamId) ?? [];
    this.streams.set(streamId, stream);
    // Irregular gaps, and commit = prepare as for events appended outside explicit transactions.
    this.logPosition += 100n + BigInt(this.log.length % 7);
    const event: FakeRecord = {
      streamId,
      id,
      isJson: true,
      revision: BigInt(stream.length),
      type,
      created: new Date(),
      data: structuredClone(data),
      metadata: structuredClone(metadata),
      position: { commit: this.logPosition, prepare: this.logPosition },
    };
    stream.push(event);
    this.log.push(event);
    for (const entry of this.live) this.push(entry, event);
    return event;
  }

  private push(entry: { subscription: FakeSubscription; typeFilter: RegExp | null }, event: FakeRecord): void {
    if (entry.typeFilter !== null && !entry.typeFilter.test(event.type)) return;
    entry.subscription.write({ event });
  }
}

function isBefore(a: Position, b: Position): boolean {
  return a.commit < b.commit || (a.commit === b.commit && a.prepare < b.prepare);
}
