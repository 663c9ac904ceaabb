import type { Plugin } from 'graphql-yoga';

/**
 * The media types yoga can answer in (its result processors). yoga picks one only after executing
 * the operation, so a request whose Accept header allows none of them would run a mutation and then
 * get 406 Not Acceptable, without learning that its write happened. Refused here, before anything runs.
 */
const ANSWERABLE = ['application/graphql-response+json', 'application/json', 'text/event-stream', 'multipart/mixed'];

export function acceptsAnAnswer(accept: string | null): boolean {
  if (accept === null || accept.trim() === '') return true;
  return accept.split(',').some((range) => {
    const type = range.split(';')[0]!.trim().toLowerCase();
    if (type === '*/*') return true;
    if (type.endsWith('/*')) return ANSWERABLE.some((answerable) => answerable.startsWith(type.slice(0, -1)));
    return ANSWERABLE.includes(type);
  });
}

export function useAcceptCheck(): Plugin {
  return {
    onRequest({ request, endResponse }) {
      // GET for GraphiQL's page (text/html) is served before this plugin runs, by yoga itself.
      if (request.method === 'OPTIONS' || acceptsAnAnswer(request.headers.get('accept'))) return;
      const body = JSON.stringify({
        errors: [{ message: `cannot answer in any type the Accept header allows; accept one of ${ANSWERABLE.join(', ')}`, extensions: { code: 'NOT_ACCEPTABLE' } }],
      });
      endResponse(new Response(body, { status: 406, headers: { 'content-type': 'application/json; charset=utf-8' } }));
    },
  };
}
