/** What the HTTP fuzzer found, each as a test that failed before the fix. */
import { documentNesting } from '../../src/api/nesting';
import { type TestLedger, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

it('a mutation whose Accept header yoga cannot answer is refused with 406 before anything runs (it ran, then got 406)', async () => {
  const id = uniqueId('acc');
  const body = JSON.stringify({ query: `mutation { openAccount(input: { id: "${id}" }) { __typename } }` });
  const before = ledger.running.ledger.node.status().commitIndex;
  for (const accept of ['text/html', 'tN', 'image/png, text/plain;q=0.5']) {
    const res = await rawRequest(ledger.running.port, {
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), accept, authorization: `Bearer ${await ledger.token(['admin'])}` },
      body,
    });
    expect(res.status).toBe(406);
    expect(res.json.errors[0].extensions.code).toBe('NOT_ACCEPTABLE');
  }
  expect(ledger.running.ledger.node.status().commitIndex).toBe(before);
  // Acceptable types (and none at all) still work.
  for (const accept of ['application/json', 'application/*;q=0.9', '*/*', 'application/graphql-response+json, text/html']) {
    const read = JSON.stringify({ query: '{ ledger { nodeId } }' });
    const res = await rawRequest(ledger.running.port, {
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(read)), accept, authorization: `Bearer ${await ledger.token(['admin'])}` },
      body: read,
    });
    expect(res.status).toBe(200);
  }
});

it('a document nested thousands of levels deep is refused with a clear error (it overflowed the stack: 500)', async () => {
  for (const depth of [65, 3000, 20000]) {
    const res = await ledger.gql(`{ ${'a { '.repeat(depth)}b${' }'.repeat(depth)} }`);
    expect(res.status).toBeLessThan(500);
    expect(res.body.errors?.[0]?.message).toBe(`the document is nested ${depth + 1} levels deep; at most 64 are accepted`);
  }
  const list = await ledger.gql(`{ account(id: ${'['.repeat(5000)}"x"${']'.repeat(5000)}) { id } }`);
  expect(list.status).toBeLessThan(500);
  expect(list.body.errors?.[0]?.message).toMatch(/nested 5002 levels deep/);
  // The server goes on answering.
  expect((await ledger.data('{ ledger { nodeId } }')).ledger.nodeId).toBeTruthy();
});

it('counts nesting outside strings, block strings and comments', () => {
  expect(documentNesting('{ a { b(x: [1, {y: 2}]) } }')).toBe(5);
  expect(documentNesting('{ a(s: "{{{{[[[(((") # {{{{{{\n }')).toBe(2);
  expect(documentNesting('{ a(s: """{{{{ \n {{{{""") }')).toBe(2);
  expect(documentNesting('{ a(s: "\\"{{{{") }')).toBe(2);
});
