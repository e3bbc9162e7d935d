import { pino, type Logger } from 'pino';
import PinoPretty from 'pino-pretty';
import type { Config } from './config.js';

export type LogFormat = 'json' | 'pretty';

/** `logFormat` when set; else readable lines on a terminal and JSON everywhere else (journald, files, collectors). */
export function effectiveLogFormat(config: Pick<Config, 'logFormat'>, stdoutIsTty = !!process.stdout.isTTY): LogFormat {
  return config.logFormat ?? (stdoutIsTty ? 'pretty' : 'json');
}

/**
 * The process logger: ISO-8601 timestamps (`"time":"2026-12-03T08:45:00.123Z"`),
 * never epoch milliseconds; secrets a caller might pass by mistake are
 * redacted. `pretty` is pino-pretty's own formatting, in this thread, so the
 * lines are ordered with everything else the process writes.
 */
export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level: config.logLevel,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'token', '*.token', 'headers["x-auth-token"]', 'headers["x-service-token"]'], censor: '***' },
  };
  if (effectiveLogFormat(config) === 'pretty') {
    const pretty = PinoPretty({ colorize: destination ? false : undefined, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l o', ignore: 'pid,hostname', sync: true, destination: destination ?? 1 });
    return pino(options, pretty);
  }
  return destination ? pino(options, destination) : pino(options);
}
