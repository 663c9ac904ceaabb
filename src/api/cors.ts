import type { Plugin } from 'graphql-yoga';

/**
 * Cross-origin access for browsers: only the configured origins (LEDGER_CORS_ORIGINS) get CORS
 * headers; every other origin gets none, so a browser keeps other sites' scripts from reading
 * answers. Same-origin pages need no CORS. An origin is never echoed back unless it is on the list,
 * and credentials (cookies) are never allowed: the API authenticates with a bearer token.
 */
export function useAllowedOrigins(allowedOrigins: readonly string[]): Plugin {
  const allowed = new Set(allowedOrigins);
  const headersFor = (request: Request): Record<string, string> => {
    const origin = request.headers.get('origin');
    if (origin === null || !allowed.has(origin)) return allowed.size > 0 ? { vary: 'Origin' } : {};
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type',
      'access-control-max-age': '600',
      vary: 'Origin',
    };
  };
  return {
    onRequest({ request, endResponse }) {
      // Preflights are answered here, before authentication (browsers send them without a token).
      if (request.method === 'OPTIONS') endResponse(new Response(null, { status: 204, headers: { 'content-length': '0', ...headersFor(request) } }));
    },
    onResponse({ request, response }) {
      for (const [name, value] of Object.entries(headersFor(request))) response.headers.set(name, value);
    },
  };
}

/** An origin as a browser sends it: scheme, host and optional port, nothing else. */
export function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}
