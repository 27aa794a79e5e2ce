// keyplane dashboard: progressive enhancement only. Every action works without this file; with it,
// copy buttons copy, and destructive buttons ask in a dialog and post directly instead of opening
// their confirmation page.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf"]');

  document.addEventListener("click", function (ev) {
    var copy = ev.target.closest("[data-copy]");
    if (copy) {
      var field = document.getElementById(copy.getAttribute("data-copy"));
      if (!field) return;
      ev.preventDefault();
      var done = function () {
        var label = copy.textContent;
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
      } else {
        field.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* the value stays selected */ }
      }
      return;
    }
    var act = ev.target.closest("a[data-confirm]");
    if (act && csrf) {
      ev.preventDefault();
      if (!window.confirm(act.getAttribute("data-confirm"))) return;
      var form = document.createElement("form");
      form.method = "post";
      form.action = act.getAttribute("data-post");
      var t = document.createElement("input");
      t.type = "hidden"; t.name = "csrf"; t.value = csrf.content;
      form.appendChild(t);
      document.body.appendChild(form);
      form.submit();
    }
  });

  // A form that waits for a slow answer (a test send may take up to 15 s) says so on its button, so
  // that nobody sends it twice. Coming back to the page through the history restores the button.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-busy")) return;
    var btn = form.querySelector("button[type=submit]");
    if (!btn || btn.disabled) return;
    btn.setAttribute("data-label", btn.textContent);
    btn.textContent = form.getAttribute("data-busy");
    btn.setAttribute("aria-busy", "true");
    // Disabled after the submission has started, so that the form is still sent.
    setTimeout(function () { btn.disabled = true; }, 0);
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-busy] button[data-label]").forEach(function (btn) {
      btn.textContent = btn.getAttribute("data-label");
      btn.removeAttribute("data-label");
      btn.removeAttribute("aria-busy");
      btn.disabled = false;
    });
  });

  // The workspace switcher navigates as soon as a workspace is chosen.
  var sw = document.getElementById("workspace-switch");
  if (sw) {
    // /w/{slug} leads to the first page the person's role may open.
    sw.addEventListener("change", function () { window.location = "/w/" + encodeURIComponent(sw.value); });
    var go = document.getElementById("workspace-go");
    if (go) go.hidden = true;
  }

  // "Never expire" disables the date, so nobody sets both.
  var never = document.getElementById("neverExpire"), date = document.getElementById("expiresAt");
  if (never && date) {
    var sync = function () { date.disabled = never.checked; };
    never.addEventListener("change", sync); sync();
  }
})();
