// mailhooks dashboard: confirmations and copy buttons. Everything works without it.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var confirmer = target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    var copier = target.closest("[data-copy]");
    if (copier) {
      var source = document.querySelector(copier.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          copier.textContent = "Copied";
        }, function () {
          copier.textContent = "Select and copy";
        });
      }
    }
  });
  // Forms post once: a double click must not create two webhooks or two keys.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    if (form.dataset.sent === "1") { event.preventDefault(); return; }
    form.dataset.sent = "1";
    window.setTimeout(function () { form.dataset.sent = ""; }, 3000);
  });
})();
