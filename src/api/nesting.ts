import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Documents nested deeper than this ({ [ and ( together) are refused before they are parsed. The
 * depth limit (12 fields) is checked on the parsed document, but parsing and the cost limit recurse
 * over the nesting first: a few thousand levels overflowed the stack (found by the HTTP fuzzer, an
 * internal error). Legitimate documents, within depth 12 and with fragments and input literals, stay
 * far below.
 */
export const DOCUMENT_NESTING_MAX = 64;

/** The deepest nesting of brackets in a GraphQL document, outside strings and comments. */
export function documentNesting(query: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < query.length; i += 1) {
    const c = query[i];
    if (c === '#') {
      while (i < query.length && query[i] !== '\n' && query[i] !== '\r') i += 1;
    } else if (c === '"') {
      if (query.startsWith('"""', i)) {
        const end = query.indexOf('"""', i + 3);
        i = end < 0 ? query.length : end + 2;
      } else {
        for (i += 1; i < query.length && query[i] !== '"' && query[i] !== '\n'; i += 1) if (query[i] === '\\') i += 1;
      }
    } else if (c === '{' || c === '[' || c === '(') {
      depth += 1;
      if (depth > deepest) deepest = depth;
    } else if (c === '}' || c === ']' || c === ')') {
      depth = Math.max(0, depth - 1);
    }
  }
  return deepest;
}

export function useNestingLimit(nestingMax = DOCUMENT_NESTING_MAX): Plugin {
  return {
    onParams({ params, setResult }) {
      if (typeof params.query !== 'string') return;
      const nesting = documentNesting(params.query);
      if (nesting > nestingMax) {
        setResult({ errors: [new GraphQLError(`the document is nested ${nesting} levels deep; at most ${nestingMax} are accepted`, { extensions: { code: 'BAD_USER_INPUT' } })] });
      }
    },
  };
}
