// The daemon's events over Server-Sent Events (GET /api/v1/events). One stream for the whole page. After it drops
// (a daemon restart, a network hiccup) it comes back by itself, and every listener of 'reconnected' catches up by
// fetching what it shows again: the stream has no replay, so what happened meanwhile is read from the API.

import { shared } from './state.js';

const TOPICS = ['task.queued', 'task.started', 'task.finished', 'task.retrying', 'task.artifacts', 'task.progress',
  'worker.joined', 'worker.left', 'worker.lost', 'plan.phase', 'gate.result'];

class Live extends EventTarget {
  state = 'connecting';   // connecting · live · reconnecting
  #source = null;
  #lost = false;
  #retry = null;
  #backoff = 1000;

  start() {
    if (this.#source) return;
    const es = new EventSource('/api/v1/events', { withCredentials: true });
    this.#source = es;
    es.addEventListener('open', () => {
      this.#backoff = 1000;
      this.#set('live');
      if (this.#lost) {
        this.#lost = false;
        this.dispatchEvent(new Event('reconnected'));
      }
    });
    es.addEventListener('error', () => {
      this.#lost = true;
      this.#set('reconnecting');
      // The browser retries a dropped stream itself; one it gave up on (an answer other than 200: the daemon
      // starting, or signed out) is opened again here, a little later each time.
      if (es.readyState === EventSource.CLOSED) {
        this.#source = null;
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.start(), this.#backoff);
        this.#backoff = Math.min(this.#backoff * 2, 10000);
      }
    });
    for (const topic of TOPICS) {
      es.addEventListener(topic, m => {
        let e;
        try { e = JSON.parse(m.data); } catch { return; }
        this.dispatchEvent(new CustomEvent('event', { detail: { topic, ts: e.ts, body: e.body ?? {} } }));
      });
    }
  }

  #set(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new Event('state'));
  }
}

export const live = new Live();

/**
 * A view that reads what it shows with `load`: now, again (at most once a second) on each event `wanted(topic, body)`
 * picks, and every `every` ms while `when()` holds, for what changes without an event. A paused view reads nothing:
 * it counts the events it did not show, and reads again when it is resumed (main.js calls refresh).
 */
export function follow(load, wanted, { every = 0, when = () => true } = {}) {
  const refetch = throttle(load, 1000);
  const poll = every > 0 ? setInterval(() => { if (when() && !shared.paused) refetch(); }, every) : null;
  load();
  return {
    refresh: load,
    event({ topic, body }) {
      if (!wanted(topic, body)) return;
      if (shared.paused) shared.missed(); else refetch();
    },
    unmount() { refetch.cancel(); clearInterval(poll); },
  };
}

/** Calls fn at most once per `ms`, the last call winning; cancel() drops a pending one. */
export function throttle(fn, ms) {
  let timer = null, last = 0;
  const run = () => { timer = null; last = Date.now(); fn(); };
  const t = () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(run, wait);
  };
  t.cancel = () => { clearTimeout(timer); timer = null; };
  return t;
}
