// The daemon's API, as the page calls it. Every request says it is the dashboard's (X-Sparky-Dashboard: the daemon
// refuses the dashboard's state-changing requests when dashboard = read-only); a state-changing one also carries the
// CSRF header where the daemon signed this browser in with a cookie.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

/** Called with no argument when the daemon answers 401: the page shows its sign-in. */
let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return null;
}

export function headers(method = 'GET') {
  const h = { 'X-Sparky-Dashboard': '1' };
  const csrf = cookie('sparky_csrf');
  if (method !== 'GET' && csrf) h['X-Sparky-CSRF'] = csrf;
  return h;
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, headers: { ...headers(method), Accept: 'application/json' }, credentials: 'same-origin', signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'the daemon does not answer');
  }
  if (resp.status === 401) {
    onUnauthorized();
    throw new ApiError(401, 'sign in first');
  }
  if (!resp.ok) {
    let detail = `HTTP ${resp.status}`;
    try { detail = (await resp.json()).detail || detail; } catch { /* not a problem+json body */ }
    throw new ApiError(resp.status, detail);
  }
  return resp.status === 204 ? null : resp.json();
}

/** The query string of a list request: only the parameters that have a value. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

export const taskPath = id => `/api/v1/tasks/${encodeURIComponent(id)}`;
