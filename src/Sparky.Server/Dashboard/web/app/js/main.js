// The dashboard: a header, one view at a time chosen by the location's hash, and the live stream feeding it.
//   #/              overview        #/tasks?state=…&class=…&q=…   tasks        #/task/ID   one task
//   #/workers       workers, pilots and Slurm jobs                 #/gpus      GPUs
//   #/plans         plans           #/plan/NAME  one plan            #/signin    sign in

import { api, whenUnauthorized } from './api.js';
import { h, fill } from './dom.js';
import { duration, shortVersion } from './format.js';
import { live } from './live.js';
import { samples, startSampling } from './samples.js';
import { shared } from './state.js';
import * as overview from './views/overview.js';
import * as tasks from './views/tasks.js';
import * as task from './views/task.js';
import * as workers from './views/workers.js';
import * as gpus from './views/gpus.js';
import * as plans from './views/plans.js';
import * as signin from './views/signin.js';

const main = document.getElementById('view');
const pauseButton = document.getElementById('pause');
const liveBadge = document.getElementById('live');
const signOut = document.getElementById('signout');
const about = document.getElementById('about');
const modeBadge = document.getElementById('mode');

let current = null;     // the mounted view: {refresh?, event?, unmount?}
let booted = false;

/** '#/task/abc?x=1' → {path: ['task', 'abc'], params: URLSearchParams('x=1')} */
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, q = ''] = raw.split('?', 2);
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(q) };
}

function viewFor(path) {
  switch (path[0]) {
    case undefined: return [overview, 'overview'];
    case 'tasks': return [tasks, 'tasks'];
    case 'task': return path[1] ? [task, 'tasks'] : null;
    case 'workers': return [workers, 'workers'];
    case 'gpus': return [gpus, 'gpus'];
    case 'plans': return [plans, 'plans'];
    case 'plan': return path[1] ? [plans, 'plans'] : null;
    case 'signin': return [signin, null];
    default: return null;
  }
}

function route() {
  const { path, params } = parseHash(location.hash);
  current?.unmount?.();
  current = null;
  main.replaceChildren();
  const found = viewFor(path);
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', found && a.dataset.nav === found[1]);
  if (!found) {
    fill(main, h('section', { class: 'panel' }, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), h('a', { href: '#/' }, 'Overview')));
    return;
  }
  const [view] = found;
  current = view.mount(main, { path, params, onSignedIn: boot }) ?? null;
}

function showPause() {
  pauseButton.setAttribute('aria-pressed', String(shared.paused));
  pauseButton.textContent = shared.paused ? (shared.waiting ? `Resume (${shared.waiting} new)` : 'Resume') : 'Pause';
  document.body.classList.toggle('paused', shared.paused);
}

function showLive() {
  liveBadge.dataset.state = live.state;
  liveBadge.textContent = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…' }[live.state];
}

function showStatus() {
  const s = shared.status;
  if (!s) return;
  signOut.hidden = !s.token_required;
  modeBadge.hidden = !shared.readOnly;
  const uptime = Date.parse(s.now) - Date.parse(s.started_at);
  fill(about, `Sparky ${shortVersion(s.version)} · mode ${s.mode} · up ${duration(uptime)} · dashboard ${s.dashboard}`);
}

async function boot() {
  try {
    shared.setStatus(await api('/api/v1/status'));
  } catch (e) {
    if (e.status === 401) return; // the sign-in is shown
    fill(main, h('section', { class: 'panel error' }, h('h1', {}, 'The daemon does not answer'), h('p', {}, e.message)));
    setTimeout(boot, 2000);
    return;
  }
  if (!booted) {
    booted = true;
    live.start();
    startSampling();
  }
  if (parseHash(location.hash).path[0] === 'signin') {
    location.hash = sessionStorage.getItem('sparky.return') || '#/';
    sessionStorage.removeItem('sparky.return');
  } else route();
}

whenUnauthorized(() => {
  if (parseHash(location.hash).path[0] === 'signin') return;
  sessionStorage.setItem('sparky.return', location.hash || '#/');
  location.hash = '#/signin';
});

window.addEventListener('hashchange', route);
pauseButton.addEventListener('click', () => shared.setPaused(!shared.paused));
signOut.addEventListener('click', async () => {
  try { await api('/dashboard/signout', { method: 'POST' }); } finally { location.hash = '#/signin'; location.reload(); }
});
shared.addEventListener('pause', () => { showPause(); if (!shared.paused) current?.refresh?.(); });
shared.addEventListener('missed', showPause);
shared.addEventListener('status', showStatus);
live.addEventListener('state', showLive);
live.addEventListener('event', e => current?.event?.(e.detail));
live.addEventListener('reconnected', () => current?.refresh?.());

showPause();
showLive();
// The sign-in view needs no daemon status; every other view waits for the first one.
if (parseHash(location.hash).path[0] === 'signin') route();
boot();

// For the tests and for anyone at the console: what the page has sampled.
window.sparkyDashboard = { samples, shared, live };
