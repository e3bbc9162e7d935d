import { spawn } from 'node:child_process';
import { now } from './stats.js';

export interface CurlResult {
  httpCode: number;
  /** curl's own time_total, seconds */
  seconds: number;
  /** wall time around the curl process, seconds */
  wallSeconds: number;
  sizeUpload: number;
  sizeDownload: number;
  body: string;
}

export interface CurlRequest {
  url: string;
  /** request headers, passed to curl through its config on stdin (tokens stay out of argv) */
  headers?: Record<string, string>;
  /** `curl -T file`: PUT the file */
  uploadFile?: string;
  /** extra args, e.g. ['-X', 'POST'] */
  args?: string[];
  /** where the body goes; /dev/null for timed downloads */
  output?: string;
  maxSeconds: number;
}

/** Runs curl as a user would and reads its measurements from `-w %{json}`. */
export function curl(req: CurlRequest): Promise<CurlResult> {
  const args = ['-sS', '-K', '-', '--max-time', String(Math.ceil(req.maxSeconds)), '-w', '\n%{json}', ...(req.args ?? [])];
  if (req.uploadFile) args.push('-T', req.uploadFile);
  args.push('-o', req.output ?? '-', req.url);
  const config = Object.entries(req.headers ?? {})
    .map(([k, v]) => `header = "${k}: ${v.replace(/["\\]/g, '\\$&')}"`)
    .join('\n');
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn('curl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.stdin.end(config + '\n');
    child.on('close', (code) => {
      const wallSeconds = (now() - start) / 1000;
      const nl = out.lastIndexOf('\n{');
      if (code !== 0 || nl < 0) {
        reject(new Error(`curl ${req.url} failed (exit ${code}): ${err.trim() || out.slice(0, 300)}`));
        return;
      }
      const w = JSON.parse(out.slice(nl + 1)) as Record<string, number>;
      resolve({
        httpCode: Number(w.http_code ?? w.response_code),
        seconds: Number(w.time_total),
        wallSeconds,
        sizeUpload: Number(w.size_upload),
        sizeDownload: Number(w.size_download),
        body: out.slice(0, nl),
      });
    });
  });
}
