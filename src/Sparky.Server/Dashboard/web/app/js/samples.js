// The daemon's status every few seconds while the page is open: the overview's charts (each class's concurrency limit
// and running tasks over the last minutes) and its throughput are drawn from these samples.

import { api } from './api.js';
import { shared } from './state.js';

export const SAMPLE_EVERY_MS = 2000;
const KEEP_MS = 10 * 60 * 1000;

/** [{t (ms), status}], oldest first, at most the last ten minutes. */
export const samples = [];

let timer = null;

export function startSampling() {
  if (timer) return;
  const tick = async () => {
    try {
      const status = await api('/api/v1/status');
      const t = Date.now();
      samples.push({ t, status });
      while (samples.length && samples[0].t < t - KEEP_MS) samples.shift();
      shared.setStatus(status);
    } catch { /* the daemon is away: the live indicator says so, the next tick tries again */ }
    timer = setTimeout(tick, SAMPLE_EVERY_MS);
  };
  tick();
}

const finished = s => s.totals.succeeded + s.totals.failed + s.totals.cancelled;

/**
 * Tasks that ended per second over the last `windowMs`, from the counters (null before two samples). A replay moves a
 * finished task back to queued, so a drop in the count is read as no progress rather than as a negative rate.
 */
export function throughput(windowMs = 60000) {
  if (samples.length < 2) return null;
  const last = samples[samples.length - 1];
  const first = samples.find(s => s.t >= last.t - windowMs) ?? samples[0];
  if (first === last) return null;
  const restarted = samples.some(s => s.t > first.t && s.status.started_at !== first.status.started_at);
  if (restarted) return null;
  return Math.max(0, finished(last.status) - finished(first.status)) / ((last.t - first.t) / 1000);
}
