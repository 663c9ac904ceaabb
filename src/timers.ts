/**
 * The longest delay a Node timer takes: 2^31 - 1 ms, about 24.8 days. Node fires a timer asked for
 * longer after 1 ms (with a TimeoutOverflowWarning), so a later deadline is waited for in steps.
 */
export const TIMER_DELAY_MAX_MS = 2 ** 31 - 1;
