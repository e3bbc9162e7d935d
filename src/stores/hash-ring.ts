/**
 * The shared-memory layout of a hash session (stores/hash-pool.ts), known
 * to both the pool and its workers (stores/hash-worker.ts).
 */
export const BLOCK_SIZE = 512 * 1024;
export const BLOCKS_PER_SESSION = 2;

// Control array slots (Int32): blocks published by the main thread; per worker role (0 md5, 1 sha512):
// blocks hashed, "main waits for this worker" and "worker is idle, kick it"; then the length of each block.
export const SUBMITTED = 0;
export const DONE = 1; // + role
export const WAITING = 3; // + role
export const IDLE = 5; // + role
export const LENGTHS = 7; // + block index
export const CONTROL_SLOTS = LENGTHS + BLOCKS_PER_SESSION;
