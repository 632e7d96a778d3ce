// A path under /ui/ that names no page.
import { h } from '../dom.js';

export function render(main) {
  main.append(h('h1', { text: 'No such page' }), h('p', {}, 'Nothing lives at ', h('code', { text: location.pathname }), '. ', h('a', { href: '/ui/', text: 'Go to the dashboard' }), '.'));
}
