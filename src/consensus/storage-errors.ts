/**
 * Errors of the durable stores that a caller can act on. Both are retryable; they differ in what a
 * caller may assume about the command it sent.
 */

/** The write failed (disk full, I/O error) and nothing of it is left on the disk: the command did not happen. Retry later. */
export class StorageWriteError extends Error {
  constructor(
    override readonly cause: Error,
    readonly code: string | null = errorCode(cause),
  ) {
    super(`the ledger could not write to its disk (${code ?? cause.message}); nothing was recorded, retry later`);
    this.name = 'StorageWriteError';
  }
}

/**
 * The write failed and cleaning it up failed too: the command may or may not take effect (it would
 * if the node restarted before the cleanup succeeds). Retry with the same idempotency key, which
 * applies it at most once.
 */
export class OutcomeUnknownError extends Error {
  constructor(override readonly cause: Error) {
    super(
      `the ledger could not write to its disk (${errorCode(cause) ?? cause.message}) nor undo the partial write: the outcome is unknown; retry with the same idempotency key`,
    );
    this.name = 'OutcomeUnknownError';
  }
}

/** The log on disk does not check out in a way a crash cannot explain: the node refuses to start. */
export class LogCorruptionError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    /** Log indexes whose records are damaged or would be lost by cutting here. */
    readonly indexes: { first: number; last: number | null },
    readonly reason: string,
  ) {
    const at = indexes.last === null ? `index ${indexes.first} and later` : indexes.first === indexes.last ? `index ${indexes.first}` : `indexes ${indexes.first} to ${indexes.last}`;
    super(
      `log segment ${file} is corrupt at byte ${offset}: ${reason}; entries at stake: ${at}. ` +
        'Refusing to start rather than drop acknowledged entries: restore the data folder from a backup (see README, "When the node refuses to start")',
    );
    this.name = 'LogCorruptionError';
  }
}

/** Two stores disagree in a way that means acknowledged entries were lost: the node refuses to start. */
export class StoresDisagreeError extends Error {
  constructor(message: string) {
    super(`${message}. Refusing to start rather than go on with less than was acknowledged: restore the data folder from a backup (see README, "When the node refuses to start")`);
    this.name = 'StoresDisagreeError';
  }
}

export function errorCode(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : null;
}
