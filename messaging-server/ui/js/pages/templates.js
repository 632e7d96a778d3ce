// Templates: the list, and the editor with a live preview rendered by the server as you type
// (the unsaved text, for a chosen user or typed attributes and event data), its errors shown
// with line and column, the placeholders it uses, and the approved Twilio Content SID and
// variables.
import { del, get, post, put } from '../api.js';
import { navigate } from '../router.js';
import { h, replace } from '../dom.js';
import { card, debounce, errorBox, field, link, notice, pageHeader, pretty, showError, table, timeCell } from '../components.js';

export async function render(main, [id]) {
  const list = h('div');
  main.append(pageHeader('Templates', h('a', { class: 'button primary', href: '/ui/templates/new', text: 'New template' })));
  const editor = h('div');
  main.append(editor, card('All templates', list));
  get('/templates?limit=1000').then((page) => replace(list, table([
    ['Name', (t) => link('/ui/templates/' + t.id, t.name)],
    ['Content', (t) => t.content.length > 80 ? t.content.slice(0, 80) + '…' : t.content],
    ['Content SID', (t) => t.content_sid ? h('code', { text: t.content_sid }) : '—'],
    ['Updated', (t) => timeCell(t.updated_at)],
  ], page.items, 'No templates yet.'))).catch((error) => replace(list, errorBox(error)));
  if (id) await edit(editor, id === 'new' ? null : id);
}

async function edit(slot, id) {
  let template = id ? await get('/templates/' + encodeURIComponent(id)).catch((error) => { replace(slot, errorBox(error)); return undefined; }) : null;
  if (template === undefined) return;
  const t = template || {};
  const name = h('input', { name: 'name', required: true, value: t.name || '' });
  const content = h('textarea', { class: 'code', name: 'content', spellcheck: 'false', value: t.content || 'Hi {{ name | default("there") }}!' });
  const locale = h('input', { name: 'locale', value: t.locale || '', placeholder: 'e.g. en' });
  const sid = h('input', { name: 'content_sid', value: t.content_sid || '', placeholder: 'HX + 32 hex digits' });
  const variables = h('textarea', { class: 'code', name: 'content_variables', spellcheck: 'false', value: t.content_variables ? pretty(t.content_variables) : '', placeholder: '{"1": "{{ name }}"}' });
  const errors = h('div');
  const placeholders = h('p', {}, (t.placeholders || []).length ? t.placeholders.map((p) => [h('code', { text: p }), ' ']) : h('span', { class: 'muted', text: 'None.' }));
  const save = h('button', { type: 'submit', class: 'primary', text: id ? 'Save template' : 'Create template' });
  const form = h('form', {}, field('Name', name), field('Content', content, 'Placeholders: {{ name }}, {{ attributes.city }}, {{ event.discount }}, with defaults: {{ name | default("there") }}.'),
    h('div', { class: 'row' }, field('Locale', locale), field('Content SID (approved WhatsApp template)', sid)),
    field('Content variables (JSON object)', variables, 'The approved template\'s numbered variables, each a placeholder text.'),
    errors, h('div', { class: 'actions' }, save, id ? h('button', { type: 'button', text: 'Delete', on: { click: remove } }) : null));

  function body() {
    const b = { name: name.value.trim(), content: content.value };
    if (locale.value.trim()) b.locale = locale.value.trim();
    if (sid.value.trim()) b.content_sid = sid.value.trim();
    if (variables.value.trim()) b.content_variables = JSON.parse(variables.value);
    return b;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let b;
    try { b = body(); } catch (e) { showError(errors, { message: 'Content variables are not JSON: ' + e.message }); return; }
    try {
      const saved = id ? await put('/templates/' + encodeURIComponent(id), b) : await post('/templates', b);
      showError(errors, null);
      notice('Saved.');
      navigate('/ui/templates/' + saved.id, { replace: Boolean(id) });
    } catch (error) { showError(errors, error); }
  });
  async function remove() {
    try { await del('/templates/' + encodeURIComponent(id)); navigate('/ui/templates'); } catch (error) { showError(errors, error); }
  }

  // The preview: for a stored user, or typed attributes and event data.
  const who = h('input', { name: 'preview_user', placeholder: '+94771234567 (empty: the attributes below)' });
  const attributes = h('textarea', { class: 'code', name: 'preview_attributes', spellcheck: 'false', value: '{\n  "city": "Colombo"\n}' });
  const previewName = h('input', { name: 'preview_name', value: 'Amaya' });
  const eventData = h('textarea', { class: 'code', name: 'preview_event', spellcheck: 'false', value: '{}' });
  const output = h('div', { id: 'template-preview', 'aria-live': 'polite' });
  let asked = 0;
  const preview = debounce(async () => {
    if (!id) { replace(output, h('p', { class: 'muted', text: 'Create the template to preview it.' })); return; }
    const mine = ++asked;
    let request;
    try {
      request = { content: content.value, event: JSON.parse(eventData.value || '{}') };
      if (who.value.trim()) request.user = who.value.trim();
      else { request.attributes = JSON.parse(attributes.value || '{}'); if (previewName.value.trim()) request.name = previewName.value.trim(); }
      if (variables.value.trim()) request.content_variables = JSON.parse(variables.value);
    } catch (e) { replace(output, errorBox({ message: 'Not JSON: ' + e.message })); return; }
    try {
      const answer = await post(`/templates/${encodeURIComponent(id)}/preview`, request);
      if (mine !== asked) return;
      replace(output, h('div', { class: 'preview-bubble', text: answer.body }),
        answer.content_variables ? [h('h3', { text: 'Variables sent with the Content SID' }), h('pre', { text: pretty(answer.content_variables) })] : null);
    } catch (error) {
      if (mine === asked) replace(output, errorBox(error));
    }
  }, 300);
  for (const input of [content, variables, who, attributes, previewName, eventData]) input.addEventListener('input', preview);
  replace(slot, h('div', { class: 'split' },
    card(id ? 'Edit ' + t.name : 'New template', form, h('h3', { text: 'Placeholders' }), placeholders),
    card('Live preview', output, field('Preview for user', who), field('Name', previewName), field('Attributes (JSON)', attributes), field('Event data (JSON)', eventData))));
  preview();
}
