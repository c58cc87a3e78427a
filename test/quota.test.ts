import { expect } from 'chai';
import { QuotaTracker, SweepingQuota } from '../server/uploads/quota.js';

describe('SweepingQuota: expired uploads give their slots back at admission', () => {
  it('sweeps a user held at the limit at most once per interval, and admits once a sweep frees a slot', async () => {
    let now = 0;
    const inner = new QuotaTracker({ maxActive: 1, perHour: 1000 }, () => now);
    let sweeps = 0;
    let expired: string | undefined;
    const quota = new SweepingQuota(
      inner,
      async (user) => {
        sweeps++;
        if (!expired) return 0;
        inner.release(user, expired);
        expired = undefined;
        return 1;
      },
      5000,
      () => now,
    );
    expect((await quota.admit('alice', 'a')).ok).to.equal(true);
    for (let i = 0; i < 20; i++) expect((await quota.admit('alice', `b${i}`)).ok).to.equal(false);
    expect(sweeps, 'one sweep for twenty refusals within the interval').to.equal(1);
    expired = 'a';
    now += 4000;
    expect((await quota.admit('alice', 'c')).ok).to.equal(false);
    now += 1000;
    expect((await quota.admit('alice', 'd')).ok).to.equal(true);
    expect(sweeps).to.equal(2);
  });
});
