// Building the page from data without HTML parsing: every text goes in as a text node, so
// a name like `<img src=x onerror=alert(1)>` shows as those characters.

/**
 * Creates an element. `props`: `class`, `text`, `on` (event → listener), `dataset`, boolean
 * or string attributes; `children`: nodes, strings (as text), arrays, null (skipped).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = String(value);
    else if (key === 'on') for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'value') element.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden') element[key] = Boolean(value);
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Appends children (nodes, strings as text, nested arrays; null skipped). */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

const SVG = 'http://www.w3.org/2000/svg';

/** Creates an SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') element.textContent = String(value);
    else if (key === 'class') element.setAttribute('class', value);
    else if (value !== null && value !== undefined) element.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) if (child) element.append(child);
  return element;
}
