// Small progressive enhancement of the clerk's pages (everything works without it):
// the receipt's print button, a confirmation before a step that closes a case, and the caret at
// the end of a field focused to be corrected (a browser puts it at the start).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const field = document.querySelector("input[autofocus]");
  if (field && ["text", "search"].includes(field.type) && field.value) {
    field.focus();
    field.setSelectionRange(field.value.length, field.value.length);
  }
  const print = document.getElementById("print");
  if (print) print.addEventListener("click", () => window.print());
  for (const form of document.querySelectorAll("form.step")) {
    const type = form.dataset.step;
    if (["reject", "deny", "withdraw", "transfer"].includes(type)) {
      form.addEventListener("submit", (ev) => {
        const label = form.querySelector("button").textContent;
        if (!window.confirm(`确定要“${label}”吗？此操作不能撤销。`)) ev.preventDefault();
      });
    }
  }
});
