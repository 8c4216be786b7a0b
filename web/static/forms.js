/**
 * Forms that submit to the server and show its answer inline.
 *
 * The server is the one judge of what is valid: forms are `novalidate`, so the
 * server's message ("password must be 8-128 characters") is what people read,
 * next to the field it names (error.details.field matches the input's name).
 */

import { hideError, setBusy, showError } from './dom.js';

/** The form's fields as {name: value}, strings trimmed except passwords. */
export function formValues(form) {
  const values = {};
  for (const input of form.elements) {
    if (!input.name || input.disabled) continue;
    values[input.name] = input.type === 'password' ? input.value : input.value.trim();
  }
  return values;
}

/**
 * Handle a form's submit: call `submit(values)`, show a thrown error in
 * `errorNode` and mark the field it names; the submit button is busy meanwhile.
 * Returns a function that clears the error state (for a reset or a hide).
 */
export function bindForm(form, errorNode, submit) {
  form.noValidate = true;
  const button = form.querySelector('[type="submit"]');
  const clear = () => {
    hideError(errorNode);
    for (const input of form.elements) input.removeAttribute?.('aria-invalid');
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button?.disabled) return; // one request at a time
    clear();
    if (button) setBusy(button, true);
    try {
      await submit(formValues(form));
    } catch (err) {
      showError(errorNode, err);
      const field = err?.details?.field && form.elements.namedItem(err.details.field);
      if (field) {
        field.setAttribute('aria-invalid', 'true');
        field.focus();
      }
    } finally {
      if (button) setBusy(button, false);
    }
  });
  form.addEventListener('input', (event) => event.target.removeAttribute?.('aria-invalid'));
  return clear;
}
