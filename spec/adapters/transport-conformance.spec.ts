import t from 'tap';
import { MemoryNetwork } from '../../adapters/transport/memory.js';
import { WebSocketTransport } from '../../adapters/transport/websocket.js';
import type { TransportLogEntry } from '../../adapters/transport/websocket.js';
import { transportConformance } from './transport.suite.js';
import type { StartedTransport, TransportHarness } from './transport.suite.js';

t.test('MemoryNetwork (real timers)', (t) => {
  transportConformance(t, (): TransportHarness => {
    const net = new MemoryNetwork();
    return {
      async start(id, handler) {
        const transport = net.transport(id);
        await transport.start(id, handler);
        return { transport, address: id };
      },
      close: () => Promise.resolve(),
    };
  });
  t.end();
});

t.test('WebSocketTransport on 127.0.0.1', (t) => {
  const errors: TransportLogEntry[] = [];
  transportConformance(t, (): TransportHarness => ({
    async start(id, handler, restartOf?: StartedTransport) {
      const port = restartOf === undefined ? 0 : new URL(restartOf.address).port;
      const transport = new WebSocketTransport({
        listen: `127.0.0.1:${port}`,
        secret: 'conformance-secret-0123456789abcdef',
        reconnect: { initialMs: 20, maxMs: 200 },
        logger: (e) => {
          if (e.level === 'error') errors.push(e);
        },
      });
      await transport.start(id, handler);
      return { transport, address: transport.address() };
    },
    close: () => Promise.resolve(),
  }));
  t.test('no errors were logged along the way', (t) => {
    t.same(errors.map((e) => e.message), []);
    t.end();
  });
  t.end();
});
