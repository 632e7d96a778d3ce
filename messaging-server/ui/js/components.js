// Small pieces the pages share: headings, status badges, the API's errors shown with every
// field and position they name, labelled fields, tables, cursor paging, confirmations and
// the data-quality report of an import.
import { h, replace } from './dom.js';

/** A page heading with optional actions on the right. */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { text: title }), h('div', { class: 'actions' }, actions));
}

/** A card with an optional title. */
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { text: title }) : null, children);
}

/** A status as a coloured badge (messages, campaigns, consent). */
export function badge(status) {
  const text = String(status ?? '—');
  return h('span', { class: 'badge badge-' + text.toLowerCase().replace(/[^a-z_]/g, '') , text });
}

const numberFormat = new Intl.NumberFormat();
/** A count with thousands separators. */
export const count = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n));

/** An RFC 3339 time in the browser's locale; '—' when absent. */
export function time(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A `<time>` element with the exact instant as its title. */
export function timeCell(value) {
  return value ? h('time', { datetime: value, title: value, text: time(value) }) : '—';
}

/**
 * The API's error as a person reads it: its message, then every field it names
 * (`details.fields`), a template's line and column, or an upload's limit.
 */
export function errorBox(error) {
  const box = h('div', { class: 'error', role: 'alert' });
  const details = error && error.details;
  const items = [];
  if (details && Array.isArray(details.fields)) {
    for (const field of details.fields) items.push(h('li', {}, h('code', { text: field.field }), ': ', field.reason));
  }
  if (details && details.line !== undefined && !Array.isArray(details.fields)) {
    const where = `line ${details.line}` + (details.column !== undefined ? `, column ${details.column}` : '');
    items.push(h('li', {}, details.field ? h('code', { text: details.field }) : null, details.field ? ' ' : '', where, details.message ? ': ' + details.message : ''));
  }
  if (details && details.pointer !== undefined) items.push(h('li', {}, 'at ', h('code', { text: details.pointer })));
  if (details && details.limit !== undefined) items.push(h('li', { text: `limit: ${count(details.limit)} bytes` }));
  const status = error && error.status ? ` (${error.status}${error.code ? ' ' + error.code : ''})` : '';
  append_(box, h('strong', { text: (error && error.message) || String(error) }), h('span', { class: 'muted', text: status }));
  if (items.length) box.append(h('ul', {}, items));
  return box;
}
function append_(parent, ...nodes) { parent.append(...nodes); }

/** Shows an error (or clears it with null) in `slot`. */
export function showError(slot, error) {
  if (!error) slot.replaceChildren();
  else replace(slot, errorBox(error));
}

let fieldIds = 0;
/** A labelled form field around `control` (an input, select or textarea). */
export function field(label, control, hint) {
  if (!control.id) control.id = 'f' + ++fieldIds;
  const hintElement = hint ? h('small', { class: 'hint', id: control.id + '-hint', text: hint }) : null;
  if (hintElement) control.setAttribute('aria-describedby', hintElement.id);
  return h('div', { class: 'field' }, h('label', { for: control.id, text: label }), control, hintElement);
}

/** A select with `[value, label]` options. */
export function select(name, options, value) {
  return h('select', { name }, options.map(([v, label]) => h('option', { value: v, selected: v === value, text: label })));
}

/** A table: `columns` of `[heading, (row) => cell]`; an empty state when there are no rows. */
export function table(columns, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'empty', text: empty });
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([heading]) => h('th', { scope: 'col', text: heading })))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

/**
 * Cursor paging: `load(cursor)` answers `{items, next_cursor}`; `show(items)` draws a page.
 * Keeps the cursors seen so Previous goes back without offsets (fast over a million rows).
 */
export function pager(load, show) {
  const cursors = [null];
  let at = 0;
  const status = h('span', { class: 'muted' });
  const previous = h('button', { type: 'button', text: '← Previous', disabled: true });
  const next = h('button', { type: 'button', text: 'Next →', disabled: true });
  const element = h('div', { class: 'pager' }, previous, status, next);
  // Typing in a search starts a load per pause; only the latest one may show its answer.
  let latest = 0;
  async function go(index) {
    const mine = ++latest;
    previous.disabled = next.disabled = true;
    status.textContent = 'Loading…';
    element.setAttribute('aria-busy', 'true');
    const page = await load(cursors[index]);
    if (mine !== latest) return;
    element.removeAttribute('aria-busy');
    at = index;
    if (page.next_cursor) cursors[index + 1] = page.next_cursor;
    show(page.items);
    status.textContent = `Page ${at + 1}`;
    previous.disabled = at === 0;
    next.disabled = !page.next_cursor;
  }
  previous.addEventListener('click', () => go(at - 1));
  next.addEventListener('click', () => go(at + 1));
  return { element, reload: () => { cursors.length = 1; return go(0); } };
}

/** Asks to confirm an action in a modal dialog; resolves true when confirmed. */
export function confirm(title, message, action = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', text: action });
    const no = h('button', { type: 'button', text: 'Back' });
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-title' },
      h('form', { method: 'dialog' }, h('h2', { id: 'confirm-title', text: title }), h('p', { text: message }), h('div', { class: 'actions' }, no, yes)));
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    dialog.querySelector('form').addEventListener('submit', (event) => { event.preventDefault(); done(true); });
    no.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    yes.focus();
  });
}

/** A short-lived message at the bottom of the screen. */
export function notice(text) {
  const element = h('div', { class: 'notice', role: 'status', text });
  document.body.append(element);
  setTimeout(() => element.remove(), 4000);
}

/** Key figures in a row of tiles: `[label, value, tone?]`. */
export function tiles(items) {
  return h('div', { class: 'tiles' }, items.map(([label, value, tone]) =>
    h('div', { class: 'tile' + (tone ? ' tone-' + tone : '') }, h('div', { class: 'tile-value', text: value }), h('div', { class: 'tile-label', text: label }))));
}

/** An import's data-quality report: the counts, and every invalid row with line, field, reason. */
export function reportView(report, extra) {
  const rows = report.errors || [];
  const notListed = report.errors_not_listed || 0;
  return h('div', { class: 'report' },
    tiles([
      ['rows', count(report.total)],
      ['inserted', count(report.inserted), 'good'],
      ['updated', count(report.updated)],
      ['duplicates merged', count(report.duplicates)],
      ['invalid', count(report.invalid), report.invalid ? 'bad' : null],
    ]),
    extra || null,
    rows.length ? h('h3', { text: 'Invalid rows' }) : null,
    rows.length ? table([
      ['Line', (e) => String(e.line)],
      ['Field', (e) => h('code', { text: e.field })],
      ['Reason', (e) => e.reason],
    ], rows) : null,
    notListed ? h('p', { class: 'muted', text: `${count(notListed)} more invalid rows are not listed.` }) : null);
}

/** A JSON value formatted for reading. */
export const pretty = (value) => JSON.stringify(value, null, 2);

/** Calls `fn` after `ms` without further calls. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** A link inside the UI. */
export const link = (href, text) => h('a', { href, text });
