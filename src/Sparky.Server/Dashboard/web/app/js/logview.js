// A task's output on the page: one element per line, each run of styled text a span whose text is set as text.

import { createAnsiParser, styleOf } from './ansi.js';

const MAX_LINES = 5000;

export class LogView {
  constructor(pre) {
    this.pre = pre;
    this.clear();
  }

  clear() {
    this.pre.replaceChildren();
    this.parser = createAnsiParser();
    this.decoder = new TextDecoder('utf-8');
    this.line = null;
    this.lines = 0;
  }

  /** Bytes as they arrive; a UTF-8 character cut between two chunks is decoded whole. */
  writeBytes(chunk) {
    this.write(this.decoder.decode(chunk, { stream: true }));
  }

  write(text) {
    for (const op of this.parser.feed(text)) {
      if (op.newline) { this.#current(); this.line = null; }
      else if (op.cr) this.#current().replaceChildren();
      else this.#current().append(this.#span(op));
    }
  }

  /** A line of the page's own (not the task's), such as where a new attempt begins. */
  note(text) {
    this.line = null;
    this.pre.append(Object.assign(document.createElement('div'), { className: 'ln note', textContent: text }));
    this.lines++;
  }

  get empty() { return this.pre.childElementCount === 0; }

  #current() {
    if (!this.line) {
      this.line = document.createElement('div');
      this.line.className = 'ln';
      this.pre.append(this.line);
      if (++this.lines > MAX_LINES) { this.pre.firstElementChild.remove(); this.lines--; }
    }
    return this.line;
  }

  #span(op) {
    const { classes, color, background } = styleOf(op.style);
    if (classes.length === 0 && !color && !background) return document.createTextNode(op.text);
    const span = document.createElement('span');
    span.className = classes.join(' ');
    if (color) span.style.color = color;
    if (background) span.style.backgroundColor = background;
    span.textContent = op.text;
    return span;
  }
}
