// Client-side routing over the history API: each page and each resource has its own URL
// under /ui/, links inside the app change the page without a reload, back and forward work.
// A page module exports `render(main, params)` and may return a function that stops it
// (timers, listeners) when the page is left.

import { whenIdle } from './api.js';

const ROUTES = [
  [/^\/ui\/?$/, 'dashboard'],
  [/^\/ui\/users\/?$/, 'users'],
  [/^\/ui\/users\/([^/]+)$/, 'user'],
  [/^\/ui\/templates\/?$/, 'templates'],
  [/^\/ui\/templates\/([^/]+)$/, 'templates'],
  [/^\/ui\/segments\/?$/, 'segments'],
  [/^\/ui\/segments\/([^/]+)$/, 'segments'],
  [/^\/ui\/campaigns\/?$/, 'campaigns'],
  [/^\/ui\/campaigns\/new$/, 'campaigns'],
  [/^\/ui\/campaigns\/([^/]+)\/edit$/, 'campaigns'],
  [/^\/ui\/campaigns\/([^/]+)$/, 'campaign'],
  [/^\/ui\/events\/?$/, 'events'],
  [/^\/ui\/inbound\/?$/, 'inbound'],
  [/^\/ui\/inbound\/([^/]+)$/, 'inbound'],
  [/^\/ui\/settings\/?$/, 'settings'],
];

let stop = null;
let generation = 0;

function match(pathname) {
  for (const [pattern, page] of ROUTES) {
    const found = pattern.exec(pathname);
    if (found) return { page, params: found.slice(1).map(decodeURIComponent) };
  }
  return { page: 'not_found', params: [] };
}

function highlight(pathname) {
  for (const link of document.querySelectorAll('#nav a')) {
    const href = link.getAttribute('href');
    const active = href === '/ui/' ? pathname === '/ui/' || pathname === '/ui' : pathname.startsWith(href);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Shows the page of the current URL. */
export async function show() {
  const mine = ++generation;
  const root = document.documentElement;
  delete root.dataset.ready;
  delete root.dataset.loaded;
  if (stop) { try { stop(); } catch { /* a page that failed to stop must not block the next */ } }
  stop = null;
  const { pathname, search } = window.location;
  highlight(pathname);
  const { page, params } = match(pathname);
  const main = document.getElementById('main');
  const module = await import(`./pages/${page}.js`);
  if (mine !== generation) return;
  main.replaceChildren();
  const context = { path: pathname, query: new URLSearchParams(search), isCurrent: () => mine === generation };
  stop = (await module.render(main, params, context)) || null;
  if (mine !== generation && stop) { stop(); stop = null; }
  if (mine !== generation) return;
  // Marks read by the browser tests and the page benchmark: `ready` once the page is drawn
  // with its controls and main content, `loaded` once every call it made has answered.
  root.dataset.ready = page;
  performance.mark('ui-ready');
  await whenIdle();
  if (mine !== generation) return;
  root.dataset.loaded = page;
  performance.mark('ui-loaded');
}

/** Goes to `href` (a path under /ui/) as a new history entry, or replacing the current one. */
export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  window.scrollTo(0, 0);
  show();
  document.getElementById('main').focus({ preventScroll: true });
}

/** Starts routing: links, back and forward. */
export function start() {
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href]');
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || !url.pathname.startsWith('/ui')) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', show);
  show();
}
