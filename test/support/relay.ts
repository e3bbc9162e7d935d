import net from 'node:net';

export interface Relay {
  port: number;
  /** closes every relayed connection and refuses new ones */
  cut(): void;
  /** accepts connections but forwards nothing and answers nothing: a service that hangs */
  stall(): void;
  /** relays again */
  restore(): void;
  /** closes the relayed connections now and keeps relaying new ones (a connection dropped by the network) */
  drop(): void;
  /** new connections go to this port from now on (a balancer that moved the client to another node) */
  retarget(port: number): void;
  stop(): void;
}

export interface RelayOptions {
  /**
   * Sees the running total of bytes the clients sent through the relay
   * (request headers included), before the chunk that reached it goes on;
   * returning 'cut' closes that connection instead of forwarding the chunk,
   * as a bad network does mid-request.
   */
  onClientBytes?: (total: number) => 'cut' | void;
}

/**
 * A TCP relay a test owns in front of a shared service (PostgreSQL, Keystone, RabbitMQ):
 * cutting or stalling it makes the service unreachable for Imago without stopping what other
 * tests use. In front of Imago it is the bad network of the resumable-upload tests
 * (`onClientBytes`, `drop`) and the balancer that moves a client to another node (`retarget`).
 */
export async function startRelay(host: string, port: number, opts: RelayOptions = {}): Promise<Relay> {
  const sockets = new Set<net.Socket>();
  let mode: 'open' | 'cut' | 'stall' = 'open';
  let sent = 0;
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
    upstream.pipe(client);
    const watch = opts.onClientBytes;
    if (!watch) {
      client.pipe(upstream);
      return;
    }
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (watch(sent) === 'cut' || client.destroyed) {
        client.destroy();
        upstream.destroy();
        return;
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    client.on('end', () => upstream.end());
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
    drop: dropAll,
    retarget: (p) => {
      port = p;
    },
    stop: () => {
      mode = 'cut';
      dropAll();
      relay.close();
    },
  };
}
