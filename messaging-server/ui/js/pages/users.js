// Users: search and filter with cursor paging (fast over a million users), upload a CSV or
// JSON file (picker or drag and drop) with its progress and then its data-quality report,
// and the history of past imports with their reports.
import { get, query, upload } from '../api.js';
import { h, replace } from '../dom.js';
import { badge, card, count, debounce, errorBox, field, pageHeader, pager, reportView, select, table, timeCell } from '../components.js';

export async function render(main, _params, context) {
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Name, phone or attribute', value: context.query.get('q') || '' });
  const consent = select('consent', [['', 'Any'], ['OPT_IN', 'Opted in'], ['OPT_OUT', 'Opted out']], context.query.get('consent') || '');
  const topic = select('topic', [['', 'Any topic']], '');
  const list = h('div');
  const listError = h('div');
  const users = pager(async (cursor) => {
    const params = { q: q.value.trim(), consent: consent.value, topic: topic.value, limit: 50, cursor };
    history.replaceState(null, '', '/ui/users' + query({ q: params.q, consent: params.consent, topic: params.topic }));
    try {
      listError.replaceChildren();
      return await get('/users' + query(params));
    } catch (error) {
      replace(listError, errorBox(error));
      return { items: [], next_cursor: null };
    }
  }, (items) => replace(list, table([
    ['Phone', (u) => h('a', { href: '/ui/users/' + encodeURIComponent(u.phone), text: u.phone })],
    ['Name', (u) => u.name || '—'],
    ['Consent', (u) => badge(u.consent_state)],
    ['Topics', (u) => u.topics.join(', ') || '—'],
    ['Time zone', (u) => u.timezone || '—'],
    ['Updated', (u) => timeCell(u.updated_at)],
  ], items, 'No users match. Upload a file to add some.')));
  const reload = debounce(() => users.reload(), 250);
  q.addEventListener('input', reload);
  consent.addEventListener('change', reload);
  topic.addEventListener('change', reload);

  const history_ = h('div');
  const uploader = uploadBox(async () => { users.reload(); loadHistory(); });

  main.append(
    pageHeader('Users'),
    card('Upload users', uploader),
    card(null, h('div', { class: 'filters', role: 'search' }, field('Search', q), field('Consent', consent), field('Topic', topic)), listError, list, users.element),
    card('Past imports', history_),
  );

  get('/topics?limit=1000').then((topics) => {
    for (const t of topics.items) topic.append(h('option', { value: t.topic, text: `${t.topic} (${count(t.subscribers)})` }));
    topic.value = context.query.get('topic') || '';
  }).catch(() => {});

  async function loadHistory() {
    try {
      const page = await get('/ingestions?limit=20');
      replace(history_, table([
        ['When', (i) => timeCell(i.started_at)],
        ['Kind', (i) => i.kind],
        ['Source', (i) => i.source],
        ['Rows', (i) => count(i.report.total)],
        ['Inserted', (i) => count(i.report.inserted)],
        ['Updated', (i) => count(i.report.updated)],
        ['Invalid', (i) => count(i.report.invalid)],
        ['Status', (i) => i.stopped_because ? h('span', {}, badge(i.status), ' ', i.stopped_because) : badge(i.status)],
        ['', (i) => h('button', { type: 'button', text: 'Report', on: { click: () => showRecord(i.id) } })],
      ], page.items, 'No imports yet.'), h('div', { id: 'import-record' }));
    } catch (error) {
      replace(history_, errorBox(error));
    }
  }
  async function showRecord(id) {
    const slot = history_.querySelector('#import-record');
    try {
      const record = await get('/ingestions/' + encodeURIComponent(id));
      replace(slot, h('h3', { text: `Report of ${record.source} (${record.kind})` }), reportView(record.report));
      slot.scrollIntoView({ block: 'nearest' });
    } catch (error) {
      replace(slot, errorBox(error));
    }
  }
  await users.reload();
  loadHistory();
}

/** The file picker and drop zone, the progress bar, then the report. */
function uploadBox(uploaded) {
  const input = h('input', { type: 'file', name: 'file', accept: '.csv,.json,.jsonl,text/csv,application/json' });
  const zone = h('div', { class: 'dropzone' }, h('p', { text: 'Drop a CSV or JSON file of users here, or choose one.' }), field('Users file', input, 'Columns: phone, name, consent_state, attributes (JSON), timezone, locale, topics; any other column becomes an attribute.'));
  const progress = h('div', { hidden: true }, h('div', { class: 'progress-bar', role: 'progressbar', 'aria-label': 'Upload', 'aria-valuemin': '0', 'aria-valuemax': '100' }, h('span')), h('p', { class: 'muted' }));
  const result = h('div', { class: 'upload-result' });
  async function send(file) {
    const bar = progress.querySelector('.progress-bar');
    const note = progress.querySelector('p');
    progress.hidden = false;
    result.replaceChildren();
    const set = (fraction) => {
      const percent = Math.round(fraction * 100);
      bar.firstChild.style.width = percent + '%';
      bar.setAttribute('aria-valuenow', String(percent));
      note.textContent = percent < 100 ? `Uploading ${file.name}: ${percent} %` : `Checking and writing ${file.name}…`;
    };
    set(0);
    try {
      const answer = await upload('/ingestions/users', file, set);
      note.textContent = `${file.name} imported.`;
      bar.firstChild.style.width = '100%';
      replace(result, reportView(answer.report));
      uploaded();
    } catch (error) {
      progress.hidden = true;
      replace(result, errorBox(error));
    }
    input.value = '';
  }
  input.addEventListener('change', () => input.files[0] && send(input.files[0]));
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const file = event.dataTransfer.files[0];
    if (file) send(file);
  });
  return h('div', {}, zone, progress, result);
}
