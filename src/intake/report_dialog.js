// The crash-report dialog that `Sentry.showReportDialog()` loads with a script tag: it shows a
// form over the page and posts the end user's report back to the script's own address.
// Every text comes from the JSON options below and is set with textContent, never as HTML.
(function () {
  "use strict";
  var o = __OPTIONS__;
  var script = document.currentScript;
  var endpoint = script && script.src ? script.src : o.endpoint;
  var doc = document;

  function el(tag, attrs, text) {
    var node = doc.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, attrs[key]);
    }
    if (text) node.textContent = text;
    return node;
  }

  function style(node, css) {
    node.style.cssText = css;
    return node;
  }

  var overlay = style(el("div", { "class": "sentry-error-embed-wrapper", role: "dialog", "aria-modal": "true" }),
    "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.6);display:flex;" +
    "align-items:center;justify-content:center;font:14px/1.4 system-ui,sans-serif");
  var box = style(el("div", { "class": "sentry-error-embed" }),
    "background:#fff;color:#222;max-width:520px;width:92%;padding:24px;border-radius:8px;" +
    "box-shadow:0 8px 32px rgba(0,0,0,.3)");
  overlay.appendChild(box);
  box.appendChild(style(el("h2", {}, o.title), "margin:0 0 8px;font-size:20px"));
  box.appendChild(el("p", {}, o.subtitle));
  box.appendChild(el("p", {}, o.subtitle2));

  var form = el("form", { novalidate: "novalidate" });
  var message = style(el("p", { role: "alert" }), "color:#b00020;display:none");
  form.appendChild(message);

  function field(name, label, input) {
    var wrap = style(el("label", { "for": "sentry-dialog-" + name }), "display:block;margin:10px 0");
    wrap.appendChild(style(el("span", {}, label), "display:block;font-weight:600"));
    input.id = "sentry-dialog-" + name;
    input.name = name;
    style(input, "box-sizing:border-box;width:100%;padding:6px;border:1px solid #999;border-radius:4px");
    wrap.appendChild(input);
    var error = style(el("span", { "class": "sentry-dialog-error" }), "color:#b00020;display:none");
    wrap.appendChild(error);
    form.appendChild(wrap);
    return { input: input, error: error };
  }

  var fields = {
    name: field("name", o.labelName, el("input", { type: "text", autocomplete: "name" })),
    email: field("email", o.labelEmail, el("input", { type: "email", autocomplete: "email" })),
    comments: field("comments", o.labelComments, el("textarea", { rows: "5" }))
  };
  fields.name.input.value = o.name || "";
  fields.email.input.value = o.email || "";

  var buttons = style(el("p", {}), "display:flex;gap:8px;justify-content:flex-end");
  var close = el("button", { type: "button", "class": "sentry-dialog-close" }, o.labelClose);
  var submit = el("button", { type: "submit", "class": "sentry-dialog-submit" }, o.labelSubmit);
  buttons.appendChild(close);
  buttons.appendChild(submit);
  form.appendChild(buttons);
  box.appendChild(form);

  function shut() {
    if (overlay.parentNode) overlay.parentNode.removeChild(overlay);
    window.postMessage("__sentry_reportdialog_closed__", "*");
  }

  function show(node, text) {
    node.textContent = text || "";
    node.style.display = text ? "block" : "none";
  }

  close.addEventListener("click", shut);
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var key;
    for (key in fields) show(fields[key].error, "");
    show(message, "");
    submit.disabled = true;
    var body = new URLSearchParams();
    body.set("name", fields.name.input.value);
    body.set("email", fields.email.input.value);
    body.set("comments", fields.comments.input.value);
    fetch(endpoint, { method: "POST", body: body })
      .then(function (resp) {
        return resp.json().then(function (answer) {
          return { ok: resp.ok, answer: answer };
        });
      })
      .then(function (result) {
        submit.disabled = false;
        if (result.ok) {
          while (box.firstChild) box.removeChild(box.firstChild);
          box.appendChild(el("p", { "class": "sentry-dialog-success", role: "status" }, o.successMessage));
          var done = el("button", { type: "button" }, o.labelClose);
          done.addEventListener("click", shut);
          box.appendChild(done);
          return;
        }
        var errors = (result.answer && result.answer.errors) || {};
        for (key in errors) if (fields[key]) show(fields[key].error, String(errors[key]));
        show(message, o.errorFormEntry);
      })
      .catch(function () {
        submit.disabled = false;
        show(message, o.errorGeneric);
      });
  });

  (doc.body || doc.documentElement).appendChild(overlay);
  fields.comments.input.focus();
})();
