import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread from a module next to `from` (its import.meta.url).
 * Compiled, the module is the .js file beside the caller. Run from source
 * (`node --import tsx src/main.ts`, as the tests spawn Imago), the caller is
 * a .ts file and Node 20 does not hand tsx's loader to worker threads, so
 * the worker first registers tsx and then imports the .ts module; parentPort
 * and workerData are the same either way.
 */
export function moduleWorker(name: string, from: string, options: WorkerOptions = {}): Worker {
  if (!from.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, from), options);
  const url = new URL(`./${name}.ts`, from).href;
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); }).catch((err) => { setImmediate(() => { throw err; }); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
