// Campaigns: the list (filter by state), and the form that creates or edits one: topic,
// segment, template, trigger (manual or an event), schedule, rate and quiet hours.
import { get, post, put, query } from '../api.js';
import { navigate } from '../router.js';
import { h, replace } from '../dom.js';
import { badge, card, errorBox, field, link, pageHeader, pager, select, showError, table, timeCell } from '../components.js';

export async function render(main, params, context) {
  if (context.path.endsWith('/new') || context.path.endsWith('/edit')) return form(main, context.path.endsWith('/edit') ? params[0] : null);
  const status = select('status', [['', 'Any state'], ...['draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled'].map((s) => [s, s])], context.query.get('status') || '');
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Name', value: context.query.get('q') || '' });
  const list = h('div');
  const error = h('div');
  const campaigns = pager(async (cursor) => {
    try {
      error.replaceChildren();
      history.replaceState(null, '', '/ui/campaigns' + query({ status: status.value, q: q.value.trim() }));
      return await get('/campaigns' + query({ status: status.value, q: q.value.trim(), limit: 50, cursor }));
    } catch (e) {
      replace(error, errorBox(e));
      return { items: [], next_cursor: null };
    }
  }, (items) => replace(list, table([
    ['Name', (c) => link('/ui/campaigns/' + c.id, c.name)],
    ['Status', (c) => badge(c.status)],
    ['Trigger', (c) => (c.trigger.type === 'event' ? 'event: ' + c.trigger.event : 'manual')],
    ['Topic', (c) => c.topic || '—'],
    ['Created', (c) => timeCell(c.created_at)],
  ], items, 'No campaigns yet. Create one to send a template to a topic or segment.')));
  status.addEventListener('change', () => campaigns.reload());
  q.addEventListener('input', () => campaigns.reload());
  main.append(
    pageHeader('Campaigns', h('a', { class: 'button primary', href: '/ui/campaigns/new', text: 'New campaign' })),
    card(null, h('div', { class: 'filters' }, field('Search', q), field('State', status)), error, list, campaigns.element),
  );
  await campaigns.reload();
}

const local = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

async function form(main, id) {
  const [templates, segments, topics, existing] = await Promise.all([
    get('/templates?limit=1000'), get('/segments?limit=1000'), get('/topics?limit=1000'), id ? get('/campaigns/' + encodeURIComponent(id)) : null,
  ]);
  const c = existing || {};
  const name = h('input', { name: 'name', required: true, value: c.name || '' });
  const template = select('template_id', [['', 'Choose a template'], ...templates.items.map((t) => [t.id, t.name])], c.template_id || '');
  const topic = h('input', { name: 'topic', list: 'topic-list', value: c.topic || '', placeholder: 'e.g. DANCE' });
  const topicList = h('datalist', { id: 'topic-list' }, topics.items.map((t) => h('option', { value: t.topic })));
  const segment = select('segment_id', [['', 'No segment'], ...segments.items.map((s) => [s.id, s.name])], c.segment_id || '');
  const trigger = select('trigger', [['manual', 'Manual (launch by hand or on a schedule)'], ['event', 'Event (once per matching event)']], c.trigger ? c.trigger.type : 'manual');
  const event = h('input', { name: 'event', value: (c.trigger && c.trigger.event) || '', placeholder: 'e.g. Dance Festival or cart_abandoned' });
  const eventField = field('Event name', event, 'The alert_name or event name that triggers a run.');
  const start = h('input', { type: 'datetime-local', name: 'start_at', value: local(c.schedule && c.schedule.start_at) });
  const end = h('input', { type: 'datetime-local', name: 'end_at', value: local(c.schedule && c.schedule.end_at) });
  const rate = h('input', { type: 'number', min: '1', name: 'rate_limit_per_second', value: c.rate_limit_per_second ?? '' });
  const quietStart = h('input', { type: 'time', name: 'quiet_start', value: (c.quiet_hours && c.quiet_hours.start) || '' });
  const quietEnd = h('input', { type: 'time', name: 'quiet_end', value: (c.quiet_hours && c.quiet_hours.end) || '' });
  const scheduled = h('input', { type: 'checkbox', name: 'scheduled', checked: c.status === 'scheduled' });
  const errors = h('div');
  const showEvent = () => { eventField.hidden = trigger.value !== 'event'; };
  trigger.addEventListener('change', showEvent);
  showEvent();
  const submit = h('button', { type: 'submit', class: 'primary', text: id ? 'Save campaign' : 'Create campaign' });
  const element = h('form', { class: 'card', novalidate: true },
    field('Name', name),
    h('div', { class: 'row' }, field('Template', template), field('Topic', topic, 'Users subscribed to it; empty for everyone.'), topicList, field('Segment', segment, 'Narrows the recipients.')),
    h('div', { class: 'row' }, field('Trigger', trigger), eventField),
    h('div', { class: 'row' }, field('Start at', start, 'In your local time; empty: when launched.'), field('End at', end), field('Rate per second', rate, 'Empty: the sender\'s ceiling.')),
    h('div', { class: 'row' }, field('Quiet hours from', quietStart, 'In each recipient\'s time zone.'), field('Quiet hours until', quietEnd)),
    !id ? h('div', { class: 'field check' }, scheduled, h('label', { for: 'scheduled', text: 'Create as scheduled (sends at its start time, or listens for its event at once)' })) : null,
    errors,
    h('div', { class: 'actions' }, submit, h('a', { class: 'button', href: id ? '/ui/campaigns/' + id : '/ui/campaigns', text: 'Cancel' })));
  scheduled.id = 'scheduled';
  element.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), template_id: template.value };
    if (topic.value.trim()) body.topic = topic.value.trim();
    if (segment.value) body.segment_id = segment.value;
    body.trigger = trigger.value === 'event' ? { type: 'event', event: event.value.trim() } : { type: 'manual' };
    const schedule = {};
    if (start.value) schedule.start_at = new Date(start.value).toISOString();
    if (end.value) schedule.end_at = new Date(end.value).toISOString();
    if (Object.keys(schedule).length) body.schedule = schedule;
    if (rate.value) body.rate_limit_per_second = Number(rate.value);
    if (quietStart.value || quietEnd.value) body.quiet_hours = { start: quietStart.value, end: quietEnd.value };
    if (!id && scheduled.checked) body.status = 'scheduled';
    submit.disabled = true;
    try {
      const saved = id ? await put('/campaigns/' + encodeURIComponent(id), body) : await post('/campaigns', body);
      navigate('/ui/campaigns/' + saved.id);
    } catch (error) {
      showError(errors, error);
      submit.disabled = false;
    }
  });
  main.append(pageHeader(id ? 'Edit ' + c.name : 'New campaign'), element);
  name.focus();
}
