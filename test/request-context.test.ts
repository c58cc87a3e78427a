import { MemoryLocker } from '@tus/server';
import { expect } from 'chai';
import { UploadContexts, type RequestContext } from '../server/uploads/request-context.js';

const contextOf = (requestId: string): RequestContext => ({ requestId, responseHeaders: {} });
const noRelease = () => undefined;

describe('UploadContexts: the request behind each upload while it holds the lock', () => {
  it('names the request holding the lock, and the next one once it has the lock', async () => {
    const contexts = new UploadContexts();
    const locker = new MemoryLocker();
    const a = contextOf('a');
    const b = contextOf('b');
    const lockA = contexts.lockerFor(locker, a).newLock('u');
    await lockA.lock(new AbortController().signal, noRelease);
    expect(contexts.of('u')).to.equal(a);
    const lockB = contexts.lockerFor(locker, b).newLock('u');
    const waiting = lockB.lock(new AbortController().signal, noRelease);
    // B waits for the lock: the upload is still A's.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(contexts.of('u')).to.equal(a);
    await lockA.unlock();
    await waiting;
    // A's release, finishing after B took the lock, did not take B's place away.
    expect(contexts.of('u')).to.equal(b);
    await lockB.unlock();
    expect(contexts.of('u')).to.equal(undefined);
  });

  it('keeps uploads apart, and gives a lock without a request no context', async () => {
    const contexts = new UploadContexts();
    const locker = new MemoryLocker();
    const a = contextOf('a');
    const lock = contexts.lockerFor(locker, a).newLock('u');
    await lock.lock(new AbortController().signal, noRelease);
    const anonymous = contexts.lockerFor(locker, undefined).newLock('v');
    await anonymous.lock(new AbortController().signal, noRelease);
    expect(contexts.of('u')).to.equal(a);
    expect(contexts.of('v')).to.equal(undefined);
    await lock.unlock();
    await anonymous.unlock();
  });

  it('sets a context for the time of a task, then puts back what was there, also when the task fails', async () => {
    const contexts = new UploadContexts();
    const outer = contextOf('outer');
    const inner = contextOf('inner');
    await contexts.during('u', outer, async () => {
      expect(contexts.of('u')).to.equal(outer);
      await contexts.during('u', inner, async () => expect(contexts.of('u')).to.equal(inner));
      expect(contexts.of('u')).to.equal(outer);
      await contexts.during('u', inner, async () => Promise.reject(new Error('refused'))).catch(() => undefined);
      expect(contexts.of('u')).to.equal(outer);
    });
    expect(contexts.of('u')).to.equal(undefined);
  });
});
