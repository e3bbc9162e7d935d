import net from 'node:net';

export interface Relay {
  port: number;
  /** closes every relayed connection and refuses new ones */
  cut(): void;
  /** accepts connections but forwards nothing and answers nothing: a service that hangs */
  stall(): void;
  /** relays again */
  restore(): void;
  stop(): void;
}

/**
 * A TCP relay a test owns in front of a shared service (PostgreSQL, Keystone, RabbitMQ):
 * cutting or stalling it makes the service unreachable for Imago without stopping what other
 * tests use.
 */
export async function startRelay(host: string, port: number): Promise<Relay> {
  const sockets = new Set<net.Socket>();
  let mode: 'open' | 'cut' | 'stall' = 'open';
  const relay = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode === 'cut') return client.destroy();
    if (mode === 'stall') return client.resume();
    const upstream = net.connect(port, host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => {});
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  const dropAll = () => {
    for (const sock of sockets) sock.destroy();
  };
  return {
    port: (relay.address() as net.AddressInfo).port,
    cut: () => {
      mode = 'cut';
      dropAll();
    },
    stall: () => {
      mode = 'stall';
      dropAll();
    },
    restore: () => {
      mode = 'open';
    },
    stop: () => {
      mode = 'cut';
      dropAll();
      relay.close();
    },
  };
}
