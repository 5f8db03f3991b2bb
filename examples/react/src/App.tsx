import { useEffect, useState } from 'react';
import { ControlError } from 'caspers-replay-client';
import { useClock, useControl, useFeed } from 'caspers-replay-client/react';
import { emptyBoard, fromSnapshot, reduce } from './board';

// ?server=http://127.0.0.1:8080&kitchen=1&transport=websocket&token=PRESENTER_TOKEN
const params = new URLSearchParams(location.search);
const server = params.get('server') ?? 'http://127.0.0.1:8080';
const kitchen = Number(params.get('kitchen') ?? '1');
const transport = params.get('transport') === 'sse' ? 'sse' : 'websocket';

declare global {
  interface Window {
    /** With ?record=1: every position delivered and every snapshot's size, for tests. */
    caspersRecord?: { positions: string[]; snapshots: number[] };
  }
}

export function App() {
  const { state: board, status, clock, error, feed } = useFeed(server, {
    locationIds: [kitchen],
    transport,
    snapshot: true,
    initialState: emptyBoard,
    reduce,
    fromSnapshot,
  });
  const simTime = useClock(feed);

  useEffect(() => {
    if (!feed || params.get('record') !== '1') return undefined;
    const record = (window.caspersRecord ??= { positions: [], snapshots: [] });
    const offEvent = feed.onEvent((e) => record.positions.push(e.position));
    const offSnapshot = feed.onSnapshot((s) => record.snapshots.push(s.orders));
    return () => {
      offEvent();
      offSnapshot();
    };
  }, [feed]);

  const orders = [...board.orders.values()].sort((a, b) => a.created.localeCompare(b.created));
  const drivers = orders.filter((o) => o.driver !== null);
  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', margin: '1rem' }}>
      <h1>Kitchen {kitchen}</h1>
      <p>
        <span data-testid="status">{status}</span>
        {' · '}
        {Number.isNaN(simTime) ? '…' : new Date(simTime * 1000).toISOString().slice(0, 19).replace('T', ' ')}
        {clock ? ` · ${clock.speed}x${clock.paused ? ', paused' : ''}` : ''}
        {' · '}
        <span data-testid="delivered">{board.delivered}</span> delivered
      </p>
      {error && <p role="alert">{error.message}</p>}
      <Presenter />
      <h2>Orders in flight ({orders.length})</h2>
      <table>
        <thead>
          <tr><th>order</th><th>since</th><th>items</th><th>stage</th><th>to</th></tr>
        </thead>
        <tbody>
          {orders.map((o) => (
            <tr key={o.id}>
              <td>{o.id.slice(0, 8)}</td>
              <td>{o.created.slice(11, 16)}</td>
              <td>{o.items}</td>
              <td>{o.stage.replace('_', ' ')}</td>
              <td>{o.address}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Drivers on the road ({drivers.length})</h2>
      <ul>
        {drivers.map((o) => (
          <li key={o.id}>
            {o.id.slice(0, 8)} at {o.driver![0].toFixed(4)}, {o.driver![1].toFixed(4)}
          </li>
        ))}
      </ul>
    </main>
  );
}

/** The presenter's panel, with ?token=...: a refusal shows the server's own message. */
function Presenter() {
  const control = useControl(server, params.get('token'));
  const [message, setMessage] = useState('');
  const [day, setDay] = useState('20');
  if (!control) return null;
  const run = (change: () => Promise<unknown>) => {
    change().then(
      () => setMessage(''),
      (e: unknown) => setMessage(e instanceof ControlError ? `${e.status}: ${e.message}` : String(e)),
    );
  };
  return (
    <section aria-label="presenter">
      <button onClick={() => run(() => control.setSpeed(60))}>60x</button>
      <button onClick={() => run(() => control.setSpeed(3600))}>3600x</button>
      <button onClick={() => run(() => control.pause())}>pause</button>
      <button onClick={() => run(() => control.resume())}>resume</button>
      <input value={day} onChange={(e) => setDay(e.target.value)} size={3} aria-label="day" />
      <button onClick={() => run(() => control.seek({ day: Number(day) }))}>go to day</button>
      {message && <p role="alert" data-testid="control-error">{message}</p>}
    </section>
  );
}
