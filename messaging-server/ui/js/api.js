// The one client of /api/v1: JSON in and out, the API token from sessionStorage as a bearer
// token (asked for once when the API answers 401, and again when it is refused), errors as
// `ApiError` with the API's code, message and details, and lost connections shown and retried.

const BASE = '/api/v1';
const TOKEN_KEY = 'messaging.api_token';

/** An error the API answered (or a lost connection, status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

let asking = null;

/** Shows the token dialog (once, however many calls are waiting) and resolves when given. */
function askForToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.hidden = !refused;
  error.textContent = refused ? 'The server refused that token. Check it and try again.' : '';
  input.value = '';
  asking = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      sessionStorage.setItem(TOKEN_KEY, given);
      form.removeEventListener('submit', submit);
      dialog.close();
      asking = null;
      resolve();
    };
    form.addEventListener('submit', submit);
    // Escape would leave the page without a token: keep the dialog until one is given.
    dialog.addEventListener('cancel', (event) => event.preventDefault(), { once: true });
    dialog.showModal();
    input.focus();
  });
  return asking;
}

const banner = () => document.getElementById('connection');

function connectionLost(retryIn) {
  const element = banner();
  element.hidden = false;
  element.textContent = `Connection to the server lost. Retrying in ${Math.round(retryIn / 1000)} s…`;
}

function connectionBack() {
  const element = banner();
  if (!element.hidden) element.hidden = true;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function parse(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function errorFrom(status, body) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (error) return new ApiError(status, error.code, error.message, error.details);
  return new ApiError(status, 'http_' + status, typeof body === 'string' && body ? body : `The server answered ${status}.`);
}

/**
 * Calls the API: `request('GET', '/users?limit=50')`, `request('POST', '/templates', body)`.
 * Reads are retried while the connection is lost; writes are not (they may have happened)
 * and fail with status 0.
 */
export async function request(method, path, body, { headers = {} } = {}) {
  let refused = false;
  let wait = 1000;
  for (;;) {
    const sent = { ...headers };
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    const given = token();
    if (given) sent.Authorization = 'Bearer ' + given;
    let response;
    try {
      response = await fetch(BASE + path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      if (method !== 'GET') throw new ApiError(0, 'connection', 'The server could not be reached; nothing was confirmed. Check the connection and try again.');
      connectionLost(wait);
      await sleep(wait);
      wait = Math.min(wait * 2, 15000);
      continue;
    }
    connectionBack();
    if (response.status === 401) {
      await askForToken(refused || Boolean(given));
      refused = true;
      continue;
    }
    const parsed = await parse(response);
    if (!response.ok) throw errorFrom(response.status, parsed);
    return parsed;
  }
}

// Calls in flight, so the router can tell when a page has everything it asked for (the
// `data-loaded` mark the performance measurements read).
let inflight = 0;
let idle = [];

function tracked(promise) {
  inflight += 1;
  const done = () => {
    inflight -= 1;
    // A call that starts another when it ends keeps the page busy: look again next task.
    setTimeout(() => {
      if (inflight === 0) for (const resolve of idle.splice(0)) resolve();
    }, 0);
  };
  promise.then(done, done);
  return promise;
}

/** Resolves once no API call is in flight. */
export function whenIdle() {
  return new Promise((resolve) => {
    if (inflight === 0) setTimeout(() => (inflight === 0 ? resolve() : idle.push(resolve)), 0);
    else idle.push(resolve);
  });
}

export const get = (path) => tracked(request('GET', path));
export const post = (path, body) => tracked(request('POST', path, body ?? {}));
export const put = (path, body) => tracked(request('PUT', path, body));
export const patch = (path, body) => tracked(request('PATCH', path, body));
export const del = (path) => tracked(request('DELETE', path));

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? '?' + text : '';
}

/** A path segment, encoded (`+94…` becomes `%2B94…`). */
export const seg = (value) => encodeURIComponent(value);

/**
 * Uploads a file as multipart field `file`, reporting progress (0..1) while it is sent;
 * resolves with the API's answer. Asks for the token on 401 and sends again.
 */
export function upload(path, file, onProgress) {
  const attempt = (refused) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', BASE + path);
    const given = token();
    if (given) xhr.setRequestHeader('Authorization', 'Bearer ' + given);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { body = xhr.responseText; }
      if (xhr.status === 401) {
        askForToken(refused || Boolean(given)).then(() => attempt(true)).then(resolve, reject);
      } else if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body);
      } else {
        reject(errorFrom(xhr.status, body));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'connection', 'The upload lost its connection to the server. Check the connection and upload again (rows already written stay written; duplicates are merged).')));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
  return attempt(false);
}
