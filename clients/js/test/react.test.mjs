// The React hooks under server-side rendering, in Node (no window, no server needed):
// importing them touches no browser global, and a render opens nothing and says
// `connecting`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { useClock, useControl, useFeed } from 'caspers-replay-client/react';

test('the hooks render on a server: connecting, no events, no clock yet', () => {
  assert.equal(typeof window, 'undefined');
  function Board() {
    const { status, events, feed, error } = useFeed('http://127.0.0.1:9', { locationIds: [1] });
    const { state } = useFeed('http://127.0.0.1:9', { reduce: (n) => n + 1, initialState: 0 });
    const now = useClock(feed);
    const control = useControl('http://127.0.0.1:9', null);
    return createElement('p', null, `${status} ${events.length} ${state} ${Number.isNaN(now)} ${feed} ${error} ${control}`);
  }
  assert.equal(renderToString(createElement(Board)), '<p>connecting 0 0 true null null null</p>');
});
