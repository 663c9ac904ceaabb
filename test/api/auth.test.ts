import { authenticate, mintToken } from '../../src/api/auth';

describe('authenticate', () => {
  const key = new TextEncoder().encode('unit-test-secret-unit-test-secret-0001');

  afterEach(() => jest.useRealTimers());

  it('accepts a valid token, again from its cache, and refuses it once it has expired', async () => {
    const token = await mintToken(key, { sub: 'ann', roles: ['teller', 'nonsense' as never] }, '60s');
    const header = `Bearer ${token}`;
    await expect(authenticate(header, key)).resolves.toEqual({ ok: true, principal: { sub: 'ann', roles: ['teller'] } });
    await expect(authenticate(header, key)).resolves.toEqual({ ok: true, principal: { sub: 'ann', roles: ['teller'] } });

    // Both the cache and the JWT library read the (faked) clock.
    jest.useFakeTimers({ now: Date.now() + 61_000 });
    const expired = await authenticate(header, key);
    expect(expired.ok).toBe(false);
    expect(!expired.ok && expired.reason).toMatch(/exp/);
  });

  it('does not let a token verified under one secret pass under another', async () => {
    const token = await mintToken(key, { sub: 'ann', roles: ['admin'] }, '60s');
    await expect(authenticate(`Bearer ${token}`, key)).resolves.toMatchObject({ ok: true });
    const other = new TextEncoder().encode('another-secret-another-secret-another-1');
    await expect(authenticate(`Bearer ${token}`, other)).resolves.toMatchObject({ ok: false });
  });

  it('explains a missing or malformed header', async () => {
    await expect(authenticate(undefined, key)).resolves.toEqual({ ok: false, reason: expect.stringMatching(/missing Authorization/) });
    await expect(authenticate('Basic abc', key)).resolves.toEqual({ ok: false, reason: expect.stringMatching(/Bearer <JWT>/) });
  });

  it('mints a token that lives exactly the span asked, even when a second boundary falls while it is built', async () => {
    // The first clock read lands 1 ms before a second boundary; the JWT library's own read (new Date()) lands after it.
    jest.useFakeTimers({ now: 1_700_000_001_000 });
    jest.spyOn(Date, 'now').mockReturnValueOnce(1_700_000_000_999);
    const token = await mintToken(key, { sub: 'ann', roles: ['admin'] }, '2d');
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { iat: number; exp: number };
    expect(claims.exp - claims.iat).toBe(172_800);
    expect(claims.iat).toBe(1_700_000_001);
  });
});
