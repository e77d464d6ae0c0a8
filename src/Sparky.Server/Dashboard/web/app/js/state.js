// What the whole page shares: the daemon's last status, whether the view is paused, read-only.

class Shared extends EventTarget {
  status = null;     // GET /api/v1/status, sampled every few seconds
  paused = false;    // a paused view does not move: no refresh, no new log lines, until it is resumed
  waiting = 0;       // updates that came while paused

  get readOnly() { return this.status?.dashboard === 'read-only'; }

  setPaused(paused) {
    if (this.paused === paused) return;
    this.paused = paused;
    if (!paused) this.waiting = 0;
    this.dispatchEvent(new Event('pause'));
  }

  /** Something changed that a paused view did not show. */
  missed() {
    this.waiting++;
    this.dispatchEvent(new Event('missed'));
  }

  setStatus(status) {
    this.status = status;
    this.dispatchEvent(new Event('status'));
  }
}

export const shared = new Shared();
