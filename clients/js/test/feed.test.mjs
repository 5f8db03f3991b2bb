// The client in Node against a real server (tests/client_node.rs starts it and writes the
// window it expects): over SSE (fetch streams, Node has no EventSource) and over WebSocket
// (Node's own, --experimental-websocket), every event of the window once and in order.
//
// CASPERS_URL: the server; CASPERS_TOKEN: its presenter token; CASPERS_WINDOW: a JSON file
// {start, end, location_ids, events: [[position, wire JSON]]} of the window [start, end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { comparePositions, connect, control, ControlError, createSession } from 'caspers-replay-client';

const url = process.env.CASPERS_URL;
const token = process.env.CASPERS_TOKEN;
const windowFile = process.env.CASPERS_WINDOW;

function tsSeconds(ts) {
  return Date.parse(`${ts.replace(' ', 'T')}Z`) / 1000;
}

/** Opens a feed, runs the clock through the window and returns the events of the window. */
async function windowOver(transport, w) {
  const clock = control(url, token);
  await clock.change({ paused: true, seek: w.start });
  const feed = connect(url, { transport, locationIds: w.location_ids });
  const got = [];
  const errors = [];
  feed.onEvent((e) => got.push(e));
  feed.onError((e) => errors.push(`${e.kind}: ${e.message}`));
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${transport} feed did not open: ${errors}`)), 10_000);
      feed.onStatus((s) => {
        if (s === 'open') {
          clearTimeout(timer);
          resolve();
        }
      });
      if (feed.status === 'open') resolve();
    });
    await clock.change({ paused: false, speed: 1200 });
    const deadline = Date.now() + 30_000;
    while (!got.some((e) => tsSeconds(e.ts) >= w.end)) {
      assert.ok(Date.now() < deadline, `the ${transport} feed got ${got.length} events and stalled; errors: ${errors}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await clock.pause();
  } finally {
    feed.close();
  }
  assert.equal(feed.status, 'closed');
  // The events of the window's first second may have gone out before the feed connected
  // (the clock was sought there): the window compared starts a second later, as the
  // expected one does.
  return got.filter((e) => tsSeconds(e.ts) >= w.start + 1 && tsSeconds(e.ts) < w.end);
}

function assertWindow(got, w, transport) {
  assert.ok(w.events.length > 50, `the window has events: ${w.events.length}`);
  assert.deepEqual(
    got.map((e) => e.position),
    w.events.map(([p]) => p),
    `${transport}: the positions of the window, once each, in order`,
  );
  for (let i = 0; i < got.length; i++) {
    const { position, ...event } = got[i];
    const wire = JSON.parse(w.events[i][1]);
    assert.deepEqual(event, { ...wire, body: JSON.parse(wire.body) }, `${transport}: ${position}`);
  }
  for (let i = 1; i < got.length; i++) {
    assert.ok(comparePositions(got[i - 1].position, got[i].position) < 0);
  }
}

const w = windowFile ? JSON.parse(readFileSync(windowFile, 'utf8')) : null;

test('the server is named', () => {
  assert.ok(url && token && w, 'CASPERS_URL, CASPERS_TOKEN and CASPERS_WINDOW are set (tests/client_node.rs runs this)');
});

test('a window exact over SSE (fetch streams)', async () => {
  assert.equal(typeof EventSource, 'undefined', 'Node has no EventSource: the fetch reader is what is tested');
  assertWindow(await windowOver('sse', w), w, 'sse');
});

test('a window exact over WebSocket', async () => {
  assert.equal(typeof WebSocket, 'function', 'run with --experimental-websocket');
  assertWindow(await windowOver('websocket', w), w, 'websocket');
});

test('a session of its own: paused at the window, stepped through it, exactly its events', async () => {
  const session = await createSession(url, { start: new Date(w.start * 1000), paused: true });
  assert.equal(session.clock.paused, true);
  assert.equal(session.clock.sim_time, w.start);
  const feed = session.connect({ locationIds: w.location_ids });
  const got = [];
  const reasons = [];
  feed.onEvent((e) => got.push(e));
  feed.onClock((c) => reasons.push(c.reason));
  try {
    await new Promise((resolve) => {
      feed.onStatus((s) => s === 'open' && resolve());
      if (feed.status === 'open') resolve();
    });
    // Paused at the window's start, whose own second is out: the step emits the rest.
    const state = await session.control.step(w.end - w.start - 1);
    assert.equal(state.paused, true);
    assert.equal(state.sim_time, w.end - 1);
    const want = w.events.length;
    const deadline = Date.now() + 10_000;
    while (got.filter((e) => tsSeconds(e.ts) >= w.start + 1).length < want) {
      assert.ok(Date.now() < deadline, `the session's feed got ${got.length} of ${want} events`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    assertWindow(got.filter((e) => tsSeconds(e.ts) >= w.start + 1), w, 'session');
    assert.ok(reasons.includes('step'), `a step clock message: ${reasons}`);
    await assert.rejects(session.control.resume().then(() => session.control.step(60)), (e) => {
      assert.ok(e instanceof ControlError);
      assert.equal(e.status, 409);
      assert.match(e.message, /pause it first/);
      return true;
    });
  } finally {
    feed.close();
    await session.end();
  }
  await assert.rejects(session.control.state(), (e) => e instanceof ControlError && e.status === 410);
});

test('a refused change is a ControlError with the status and the server message', async () => {
  await assert.rejects(control(url, 'not-the-token').pause(), (e) => {
    assert.ok(e instanceof ControlError);
    assert.equal(e.status, 403);
    assert.match(e.message, /token/);
    return true;
  });
});

test('a malformed position is a TypeError that names it', () => {
  assert.throws(() => comparePositions('abc', '1a2b3c4d-0-1'), { name: 'TypeError', message: /"abc"/ });
  assert.throws(() => connect(url, { from: 'nope' }), { name: 'TypeError', message: /"nope"/ });
  assert.ok(comparePositions('1a2b3c4d-0-10', '1a2b3c4d-0-9') > 0, 'rows compare as numbers');
  assert.ok(comparePositions('1a2b3c4d-1-0', '1a2b3c4d-0-99') > 0, 'a later loop comes later');
});

test('a server that is down: connecting, errors through onError, no unhandled rejection', async () => {
  const feed = connect('http://127.0.0.1:9', { backoff: { initialMs: 50, maxMs: 100 } });
  const errors = [];
  feed.onError((e) => errors.push(e));
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(feed.status, 'connecting');
  assert.ok(errors.length >= 1 && errors.every((e) => e.kind === 'connection'));
  feed.close();
});

for (const transport of ['websocket', 'sse']) {
  test(`setFilter over ${transport} resolves when the new filter is in force, and rejects a refused one`, async () => {
    const clock = control(url, token);
    await clock.change({ paused: true, seek: w.start });
    const feed = connect(url, { transport, locationIds: [1] });
    const got = [];
    feed.onEvent((e) => got.push(e));
    try {
      await feed.setFilter({ locationIds: [3] });
      const from = got.length;
      await clock.change({ paused: false, speed: 1200 });
      const deadline = Date.now() + 20_000;
      while (got.length < from + 20) {
        assert.ok(Date.now() < deadline, `${got.length - from} events after the change`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await clock.pause();
      assert.deepEqual([...new Set(got.slice(from).map((e) => e.location_id))], [3]);
      if (transport === 'websocket') {
        await assert.rejects(feed.setFilter({ locationIds: [99] }), /location/);
      }
    } finally {
      feed.close();
    }
    await assert.rejects(feed.setFilter({ locationIds: [1] }), /closed/);
  });
}
