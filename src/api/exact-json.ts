import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Request bodies parsed so that a number keeps what the client wrote. Once JSON.parse has run,
 * `1e3`, `1000.0` and `1000` are the same number, and `100.000000000000001` is 100: an Amount sent
 * as a variable would pass where the same literal inline is refused. A number whose source text is
 * not a plain integer literal, or that is beyond the safe-integer range, is therefore handed on as an
 * InexactJsonNumber, which no integer scalar (Amount, Int, ID) accepts, exactly as their inline
 * FLOAT forms are refused; the JSON scalar turns it back into its number (see `exactJsonValue`).
 *
 * The source text comes from the `context.source` argument of a JSON.parse reviver (TC39 "JSON.parse
 * source text access": on by default from Node 21; Node 20 had it behind a flag).
 */
export class InexactJsonNumber {
  constructor(
    readonly value: number,
    /** The number as written in the request. */
    readonly source: string,
  ) {}
  /** graphql-js prints a value through toJSON, so errors show the number, not an object. */
  toJSON(): number {
    return this.value;
  }
  toString(): string {
    return this.source;
  }
}

/** A JSON integer as written: optional minus, no leading zeros, no fraction, no exponent. */
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

/**
 * The JSON.parse reviver behind parseJsonExact; also for other transports that parse JSON
 * themselves (graphql-ws: its server's `jsonMessageReviver` option).
 */
export function exactJsonReviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== 'number') return value;
  const source = context?.source;
  if (source === undefined) throw new Error('JSON.parse did not pass the source text of a number (Node 22 or later is required)');
  return INTEGER_LITERAL.test(source) && Number.isSafeInteger(value) ? value : new InexactJsonNumber(value, source);
}

/**
 * JSON.parse that keeps numbers not written as integers apart (see InexactJsonNumber). Most bodies
 * hold no JSON number at all (amounts travel as strings), and a reviver makes JSON.parse about five
 * times slower (5.4 against 0.9 µs per transfer operation of a batch), so the text is parsed without
 * it first and again with it only when a number turns up: the reviver changes numbers alone. Text
 * nested deeper than PLAIN_PARSE_DEPTH_MAX goes through the reviver too, whose recursion refuses
 * very deep nesting: the outcome is the reviver's for every text.
 */
export function parseJsonExact(text: string): unknown {
  const plain = JSON.parse(text) as unknown;
  return needsReviver(plain) ? JSON.parse(text, exactJsonReviver as (key: string, value: unknown) => unknown) : plain;
}

/** Far below the depth at which the reviver's recursion fails (about 3,000 levels on Node 24). */
const PLAIN_PARSE_DEPTH_MAX = 512;

/** A number anywhere, or nesting beyond PLAIN_PARSE_DEPTH_MAX. Iterative: no recursion of its own. */
function needsReviver(root: unknown): boolean {
  if (typeof root === 'number') return true;
  if (root === null || typeof root !== 'object') return false;
  const stack: Array<{ value: object; depth: number }> = [{ value: root, depth: 1 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.depth > PLAIN_PARSE_DEPTH_MAX) return true;
    const children: unknown[] = Array.isArray(item.value) ? item.value : Object.values(item.value);
    for (const child of children) {
      if (typeof child === 'number') return true;
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth: item.depth + 1 });
    }
  }
  return false;
}

/** Checked once at startup: without source text access every Amount variable would be refused. */
export function assertJsonSourceTextAccess(): void {
  parseJsonExact('[1.5]');
}

/** The value with every InexactJsonNumber turned back into its number (for free-form JSON). */
export function exactJsonValue(value: unknown): unknown {
  if (value instanceof InexactJsonNumber) return value.value;
  if (!containsInexact(value)) return value;
  if (Array.isArray(value)) return value.map(exactJsonValue);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, exactJsonValue(v)]));
  }
  return value;
}

function containsInexact(value: unknown): boolean {
  if (value instanceof InexactJsonNumber) return true;
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value as Record<string, unknown>).some(containsInexact);
}

function badRequest(message: string, status = 400): Error {
  return new GraphQLError(message, { extensions: { http: { status }, code: 'BAD_REQUEST' } });
}

function parseOrRefuse(text: string, what: string): unknown {
  try {
    return parseJsonExact(text);
  } catch {
    throw badRequest(`${what} is not valid JSON.`);
  }
}

function contentType(request: Request): string {
  return (request.headers.get('content-type') ?? '').split(',')[0]!.split(';')[0]!.trim().toLowerCase();
}

function paramsFromSearch(search: URLSearchParams) {
  const variables = search.get('variables');
  const extensions = search.get('extensions');
  return {
    operationName: search.get('operationName') || undefined,
    query: search.get('query') || undefined,
    variables: variables ? parseOrRefuse(variables, 'variables') : undefined,
    extensions: extensions ? parseOrRefuse(extensions, 'extensions') : undefined,
  };
}

/**
 * Replaces yoga's request parsers for every way variables can arrive: GET query strings, JSON and
 * form bodies. Multipart bodies (file uploads, which this API has none of) are refused with 415.
 */
export function useExactJsonNumbers(): Plugin {
  assertJsonSourceTextAccess();
  return {
    onRequestParse({ request, setRequestParser }) {
      if (request.method === 'GET') {
        setRequestParser((req) => paramsFromSearch(new URL(req.url).searchParams) as never);
        return;
      }
      if (request.method !== 'POST') return;
      const type = contentType(request);
      if (type === 'application/json' || type === 'application/graphql+json') {
        setRequestParser(async (req) => {
          const body = parseOrRefuse(await req.text(), 'POST body');
          if (body === null || typeof body !== 'object') throw badRequest(`POST body is expected to be an object, got ${body === null ? 'null' : typeof body}`);
          return body as never;
        });
      } else if (type === 'application/x-www-form-urlencoded') {
        setRequestParser(async (req) => paramsFromSearch(new URLSearchParams(await req.text())) as never);
      } else if (type === 'multipart/form-data') {
        setRequestParser(() => {
          throw badRequest('multipart requests are not accepted: send application/json', 415);
        });
      }
    },
  };
}
