// Segments: a rule builder for the common cases (topic, consent, attribute comparisons, event
// history; all or any of them), the rule as JSON beside it (either can be edited), and a live
// count and sample from the server as the rule changes.
import { del, get, post, put } from '../api.js';
import { navigate } from '../router.js';
import { h, replace } from '../dom.js';
import { badge, card, count, debounce, errorBox, field, link, notice, pageHeader, pretty, select, showError, table, timeCell } from '../components.js';

const KINDS = [['topic', 'Subscribed to topic'], ['consent', 'Consent is'], ['attribute', 'Attribute'], ['event', 'Did event']];
const OPS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'contains', 'starts_with', 'in', 'exists'];

export async function render(main, [id]) {
  const list = h('div');
  const editor = h('div');
  main.append(pageHeader('Segments', h('a', { class: 'button primary', href: '/ui/segments/new', text: 'New segment' })), editor, card('All segments', list));
  get('/segments?limit=1000').then((page) => replace(list, table([
    ['Name', (s) => link('/ui/segments/' + s.id, s.name)], ['Rule', (s) => h('code', { text: JSON.stringify(s.rule) })], ['Updated', (s) => timeCell(s.updated_at)],
  ], page.items, 'No segments yet.'))).catch((error) => replace(list, errorBox(error)));
  if (id) await edit(editor, id === 'new' ? null : id);
}

function conditionRow(condition, changed, removed) {
  const kind = select('kind', KINDS, condition.kind);
  const a = h('input', { name: 'a', value: condition.a ?? '' });
  const op = select('op', OPS.map((o) => [o, o]), condition.op || 'eq');
  const b = h('input', { name: 'b', value: condition.b ?? '' });
  const row = h('div', { class: 'filters condition' });
  function layout() {
    condition.kind = kind.value;
    const labels = { topic: ['Topic', null, null], consent: ['OPT_IN or OPT_OUT', null, null], attribute: ['Attribute (e.g. city)', 'Comparison', 'Value'], event: ['Event name', null, 'At least N times within D days, e.g. 1/30'] }[kind.value];
    replace(row, field('Condition', kind), field(labels[0], a), labels[1] ? field(labels[1], op) : null, labels[2] ? field(labels[2], b) : null,
      h('button', { type: 'button', 'aria-label': 'Remove condition', text: 'Remove', on: { click: removed } }));
  }
  for (const input of [a, b]) input.addEventListener('input', () => { condition.a = a.value; condition.b = b.value; changed(); });
  op.addEventListener('change', () => { condition.op = op.value; changed(); });
  kind.addEventListener('change', () => { layout(); changed(); });
  layout();
  return row;
}

function value(text) {
  try { return JSON.parse(text); } catch { return text; }
}

/** The rule the builder's conditions make. */
function ruleOf(combine, conditions) {
  const parts = conditions.filter((c) => c.a).map((c) => {
    if (c.kind === 'topic') return { topic: c.a.trim() };
    if (c.kind === 'consent') return { consent: c.a.trim().toUpperCase() };
    if (c.kind === 'event') {
      const [times, days] = String(c.b || '1/30').split('/').map((n) => Number(n.trim()));
      return { event: c.a.trim(), min_count: times || 1, within_days: days || 30 };
    }
    const op = c.op || 'eq';
    return { attribute: c.a.trim(), op, value: op === 'exists' ? true : op === 'in' ? String(c.b).split(',').map((v) => value(v.trim())) : value(c.b) };
  });
  if (parts.length === 1) return parts[0];
  return { [combine]: parts };
}

/** One condition of the builder from a rule leaf, or null when the builder has no row for it. */
function conditionOf(leaf) {
  if (!leaf || typeof leaf !== 'object' || Array.isArray(leaf)) return null;
  const keys = Object.keys(leaf);
  if (keys.length === 1 && typeof leaf.topic === 'string') return { kind: 'topic', a: leaf.topic, op: 'eq', b: '' };
  if (keys.length === 1 && typeof (leaf.consent ?? leaf.consent_state) === 'string') return { kind: 'consent', a: leaf.consent ?? leaf.consent_state, op: 'eq', b: '' };
  if (typeof leaf.event === 'string' && keys.every((k) => ['event', 'min_count', 'within_days'].includes(k))) {
    return { kind: 'event', a: leaf.event, op: 'eq', b: `${leaf.min_count ?? 1}/${leaf.within_days ?? 30}` };
  }
  if (typeof leaf.attribute === 'string' && keys.every((k) => ['attribute', 'op', 'value'].includes(k))) {
    const op = leaf.op || 'eq';
    const b = op === 'exists' ? '' : Array.isArray(leaf.value) ? leaf.value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ') : typeof leaf.value === 'string' ? leaf.value : JSON.stringify(leaf.value);
    return { kind: 'attribute', a: leaf.attribute, op, b };
  }
  // The seed's shorthand: {"attributes.city": "Colombo"}.
  if (keys.length === 1 && keys[0].startsWith('attributes.') && typeof leaf[keys[0]] !== 'object') {
    const v = leaf[keys[0]];
    return { kind: 'attribute', a: keys[0].slice('attributes.'.length), op: 'eq', b: typeof v === 'string' ? v : JSON.stringify(v) };
  }
  return null;
}

/** The builder's rows for a stored rule (one condition, all/any of conditions, or the seed's
 * shorthand with several keys), or null when the rule needs the JSON view. */
function conditionsOf(rule) {
  if (rule && typeof rule === 'object' && !Array.isArray(rule)) {
    for (const combine of ['all', 'any']) {
      if (Object.keys(rule).length === 1 && Array.isArray(rule[combine])) {
        const conditions = rule[combine].map(conditionOf);
        return conditions.every(Boolean) ? { combine, conditions } : null;
      }
    }
    const single = conditionOf(rule);
    if (single) return { combine: 'all', conditions: [single] };
    const keys = Object.keys(rule);
    if (keys.length > 1) {
      const conditions = keys.map((k) => conditionOf({ [k]: rule[k] }));
      return conditions.every(Boolean) ? { combine: 'all', conditions } : null;
    }
  }
  return null;
}

async function edit(slot, id) {
  const segment = id ? await get('/segments/' + encodeURIComponent(id)).catch((error) => { replace(slot, errorBox(error)); return undefined; }) : null;
  if (segment === undefined) return;
  const name = h('input', { name: 'name', value: segment ? segment.name : '' });
  const combine = select('combine', [['all', 'All of these'], ['any', 'Any of these']], 'all');
  const conditions = [];
  const rows = h('div');
  const json = h('textarea', { class: 'code', name: 'rule', spellcheck: 'false', value: pretty(segment ? segment.rule : { topic: 'DANCE' }) });
  const live = h('div', { id: 'segment-count', 'aria-live': 'polite' });
  const errors = h('div');
  const fromBuilder = () => { if (conditions.length) { json.value = pretty(ruleOf(combine.value, conditions)); refresh(); } };
  function addCondition(condition) {
    conditions.push(condition);
    const row = conditionRow(condition, fromBuilder, () => { conditions.splice(conditions.indexOf(condition), 1); row.remove(); fromBuilder(); });
    rows.append(row);
  }
  combine.addEventListener('change', fromBuilder);
  const stored = conditionsOf(segment ? segment.rule : { topic: 'DANCE' });
  const builderNote = h('p', { class: 'muted' });
  if (stored) {
    combine.value = stored.combine;
    for (const condition of stored.conditions) addCondition(condition);
  } else {
    builderNote.textContent = 'This rule uses forms the builder does not show (not, nested groups, user fields): edit it as JSON below.';
  }
  const refresh = debounce(async () => {
    let rule;
    try { rule = JSON.parse(json.value); } catch (e) { replace(live, errorBox({ message: 'The rule is not JSON: ' + e.message })); return; }
    try {
      const answer = await post('/segments/preview', { rule });
      replace(live, h('p', {}, h('strong', { class: 'segment-count', text: count(answer.count) }), ' users match.'),
        table([['Phone', (u) => link('/ui/users/' + encodeURIComponent(u.phone), u.phone)], ['Name', (u) => u.name || '—'], ['Consent', (u) => badge(u.consent_state)]], answer.sample, 'No one matches.'));
    } catch (error) { replace(live, errorBox(error)); }
  }, 300);
  json.addEventListener('input', refresh);
  const save = h('button', { type: 'submit', class: 'primary', text: id ? 'Save segment' : 'Create segment' });
  const form = h('form', {}, field('Name', name), h('h3', { text: 'Conditions' }), field('Combine', combine), builderNote, rows,
    h('div', { class: 'actions' }, h('button', { type: 'button', text: 'Add condition', on: { click: () => addCondition({ kind: 'attribute', a: '', op: 'eq', b: '' }) } })),
    field('Rule (JSON)', json, 'The full form: all / any / not, attribute comparisons, topic, consent, event history.'), errors,
    h('div', { class: 'actions' }, save, id ? h('button', { type: 'button', text: 'Delete', on: { click: async () => { try { await del('/segments/' + encodeURIComponent(id)); navigate('/ui/segments'); } catch (e) { showError(errors, e); } } } }) : null));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let rule;
    try { rule = JSON.parse(json.value); } catch (e) { showError(errors, { message: 'The rule is not JSON: ' + e.message }); return; }
    try {
      const saved = id ? await put('/segments/' + encodeURIComponent(id), { name: name.value.trim(), rule }) : await post('/segments', { name: name.value.trim(), rule });
      notice('Saved.');
      navigate('/ui/segments/' + saved.id, { replace: Boolean(id) });
    } catch (error) { showError(errors, error); }
  });
  replace(slot, h('div', { class: 'split' }, card(id ? 'Edit ' + segment.name : 'New segment', form), card('Who matches now', live)));
  refresh();
}
