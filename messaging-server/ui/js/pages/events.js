// Events: record one (JSON), upload a JSONL file, see what each opened (the campaign runs,
// or why none), and the recent events.
import { get, post, query, upload } from '../api.js';
import { h, replace } from '../dom.js';
import { card, count, errorBox, field, link, pageHeader, pager, pretty, reportView, table, timeCell } from '../components.js';

function outcome(answer) {
  const runs = answer.runs || [];
  return h('div', {},
    runs.length ? table([['Campaign', (r) => link('/ui/campaigns/' + r.campaign_id, r.campaign_name || r.campaign_id)], ['Messages', (r) => count(r.messages)]], runs) : null,
    answer.note ? h('p', { class: 'problem', text: answer.note }) : null,
    (answer.idle_listeners || []).length ? table([['Would listen once', (l) => link('/ui/campaigns/' + l.campaign_id, l.campaign_name || l.campaign_id)], ['Status', (l) => l.status], ['To do', (l) => h('code', { text: l.request })]], answer.idle_listeners) : null);
}

export async function render(main) {
  const text = h('textarea', { class: 'code', name: 'event', spellcheck: 'false', value: pretty({ alert_name: 'Dance Festival', segment_rule: { topic: 'DANCE' }, trigger_data: { venue: 'Galle Face Green' } }) });
  const result = h('div');
  const form = h('form', {}, field('Event (JSON)', text), h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Record event' })), result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let body;
    try { body = JSON.parse(text.value); } catch (e) { replace(result, errorBox({ message: 'Not JSON: ' + e.message })); return; }
    try { replace(result, outcome(await post('/events', body))); events.reload(); } catch (error) { replace(result, errorBox(error)); }
  });
  const file = h('input', { type: 'file', name: 'file', accept: '.jsonl,.json,.ndjson' });
  const fileResult = h('div');
  const bar = h('progress', { max: '1', value: '0', hidden: true, 'aria-label': 'Upload' });
  file.addEventListener('change', async () => {
    if (!file.files[0]) return;
    bar.hidden = false;
    try {
      const answer = await upload('/ingestions/events', file.files[0], (f) => { bar.value = f; });
      replace(fileResult, reportView(answer.report, table([
        ['Event', (n) => n.name], ['Recorded', (n) => count(n.recorded)], ['Duplicates', (n) => count(n.duplicates)],
        ['Runs opened', (n) => n.triggered.length ? n.triggered.map((t) => [link('/ui/campaigns/' + t.campaign_id, t.campaign_name), ` (${count(t.messages)} messages) `]) : (n.note || 'none')],
      ], answer.by_event_name || [])));
      events.reload();
    } catch (error) { replace(fileResult, errorBox(error)); }
    bar.hidden = true;
    file.value = '';
  });
  const list = h('div');
  const events = pager((cursor) => get('/events' + query({ limit: 25, cursor })), (items) => replace(list, table([
    ['Received', (e) => timeCell(e.received_at)], ['Name', (e) => e.name], ['User', (e) => e.user ? link('/ui/users/' + encodeURIComponent(e.user), e.user) : '—'],
    ['Data', (e) => h('code', { text: JSON.stringify(e.data ?? e.trigger_data ?? {}) })],
  ], items, 'No events recorded yet.')));
  main.append(pageHeader('Events'), h('div', { class: 'split' }, card('Record one event', form), card('Upload events (JSONL)', field('Events file', file, 'One JSON object per line.'), bar, fileResult)), card('Recent events', list, events.element));
  await events.reload().catch((error) => replace(list, errorBox(error)));
}
