/** Found by the HTTP fuzzer: a mutation with an Accept header yoga cannot answer ran, then got 406. */
import { type TestLedger, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

it('refuses with 406 before running anything when no answerable type is accepted', async () => {
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
