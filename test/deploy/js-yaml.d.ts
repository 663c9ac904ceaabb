// js-yaml 3 is installed (as a dependency of jest's coverage tooling) but ships no types and
// @types/js-yaml is not installed; this declares the one function the deploy tests use.
declare module 'js-yaml' {
  /** Parses one YAML document with the safe schema (no !!js/* types); `<<` merge keys are resolved. */
  export function safeLoad(text: string, options?: { filename?: string }): unknown;
}
