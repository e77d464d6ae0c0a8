// Signing in where the daemon requires a bearer token: the token is sent once and the daemon answers with an
// HttpOnly session cookie (and a CSRF cookie the page sends back as a header on state-changing requests).

import { api } from '../api.js';
import { h, fill } from '../dom.js';

export function mount(root, { onSignedIn }) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, aria: { label: 'token' } });
  const note = h('p', { class: 'note', role: 'status' });
  const form = h('form', { class: 'signin', on: { submit: async e => {
    e.preventDefault();
    try {
      await api('/dashboard/signin', { method: 'POST', body: { token: input.value } });
      input.value = '';
      onSignedIn();
    } catch (err) {
      fill(note, h('span', { class: 'error' }, err.status === 401 ? 'That is not the token.' : err.message));
    }
  } } },
  h('label', {}, 'Token', input), h('button', { type: 'submit' }, 'Sign in'));
  root.append(h('section', { class: 'panel narrow' }, h('h1', {}, 'Sign in'),
    h('p', {}, 'This daemon requires its token (SPARKY_TOKEN). It is sent once; the browser keeps a session cookie for seven days.'),
    form, note));
  input.focus();
}
