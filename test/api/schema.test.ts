import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSchema as buildFromSdl } from 'graphql';
import { printSchemaFile } from '../../src/api/print-schema';

describe('schema/schema.graphql', () => {
  const committed = readFileSync(join(__dirname, '..', '..', 'schema', 'schema.graphql'), 'utf8');

  it('is the schema the server serves (run `npm run schema:print` when this fails)', () => {
    expect(committed).toBe(printSchemaFile());
  });

  it('keeps the contract names and shapes of API.md', () => {
    const schema = buildFromSdl(committed);
    const fieldsOf = (type: string) => Object.keys((schema.getType(type) as any).getFields()).sort();
    expect(fieldsOf('Mutation')).toEqual(
      ['cancelTransaction', 'deposit', 'executeBatch', 'openAccount', 'settleTransaction', 'transfer', 'withdraw'].sort(),
    );
    expect(fieldsOf('Query')).toEqual(expect.arrayContaining(['account', 'accounts', 'transaction', 'transactions', 'ledger']));
    expect(fieldsOf('Account')).toEqual(
      expect.arrayContaining(['id', 'currency', 'balance', 'availableBalance', 'overdraftLimit', 'createdAt', 'lastTransactionAt', 'transactionCount', 'metadata', 'transactions', 'balanceAt']),
    );
    expect(fieldsOf('Transaction')).toEqual(
      expect.arrayContaining(['id', 'kind', 'status', 'amount', 'currency', 'fromAccountId', 'toAccountId', 'description', 'metadata', 'createdAt', 'updatedAt', 'large', 'position']),
    );
    expect(fieldsOf('BatchFailedError')).toEqual(['cause', 'code', 'index', 'message']);
    expect(committed).toContain('input BatchOperationInput @oneOf');
    expect(committed).toMatch(/union TransferResult = /);
    for (const code of ['VALIDATION', 'ACCOUNT_NOT_FOUND', 'ACCOUNT_ALREADY_EXISTS', 'INSUFFICIENT_FUNDS', 'SAME_ACCOUNT', 'CURRENCY_MISMATCH', 'TRANSACTION_NOT_FOUND', 'TRANSACTION_NOT_PENDING', 'AMOUNT_LIMIT_EXCEEDED', 'IDEMPOTENCY_CONFLICT', 'BATCH_FAILED']) {
      expect(committed).toContain(`  ${code}\n`);
    }
  });
});
