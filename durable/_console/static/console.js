// The durable console's own script: answer forms and thread actions post JSON to /api/ with the CSRF header.
// No framework, no build step. Every text the server sends back is put in the page with textContent.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(url, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
    });
    var data;
    try {
      data = await response.json();
    } catch (e) {
      data = { message: response.status + " " + response.statusText };
    }
    return { status: response.status, ok: response.ok, data: data };
  }

  function outcome(form, text, kind) {
    var out = form.querySelector(".outcome");
    if (out) {
      out.textContent = text;
      out.className = "outcome " + (kind || "");
    }
  }

  function showErrors(form, errors) {
    var list = form.querySelector(".errors");
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    if (!list) return;
    list.replaceChildren();
    (errors || []).forEach(function (error) {
      var item = document.createElement("li");
      var path = error.path ? String(error.path) : "";
      item.textContent = (path ? path + ": " : "") + String(error.message || error);
      list.append(item);
      var required = /^'([^']+)' is a required property/.exec(String(error.message || ""));
      var top = path ? path.split(/[.[]/)[0] : required ? required[1] : "";
      form.querySelectorAll("[data-field]").forEach(function (el) {
        if (el.getAttribute("data-field") === top) el.setAttribute("aria-invalid", "true");
      });
    });
  }

  // One input's typed JSON value, by its data-type; undefined leaves the property out (its default applies).
  function fieldValue(el) {
    var type = el.getAttribute("data-type");
    if (type === "boolean") return el.checked;
    var text = el.value;
    if (type === "json") {
      if (text.trim() === "") throw new Error("write the answer as JSON: \"yes\", 42, {\"approve\": true}");
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new Error("the answer is not JSON: " + e.message);
      }
    }
    if (text === "") return undefined;
    if (type === "enum") return JSON.parse(text);
    if (type === "integer" || type === "number") {
      var n = Number(text);
      if (!Number.isFinite(n)) throw new Error((el.getAttribute("data-field") || "value") + ": not a number");
      return n;
    }
    return text;
  }

  function answerOf(form) {
    var fields = form.querySelectorAll("[data-field]");
    if (fields.length === 1 && fields[0].getAttribute("data-type") === "json") return fieldValue(fields[0]);
    var answer = {};
    fields.forEach(function (el) {
      var value = fieldValue(el);
      if (value !== undefined) answer[el.getAttribute("data-field")] = value;
    });
    return answer;
  }

  async function answer(form) {
    var by = form.querySelector("input.by");
    var name = by && by.value.trim() ? by.value.trim() : null;
    if (name) localStorage.setItem("durable.by", name);
    var resume = {};
    try {
      resume[form.getAttribute("data-interrupt")] = answerOf(form);
    } catch (e) {
      showErrors(form, [{ path: "", message: e.message }]);
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    showErrors(form, []);
    outcome(form, "sending…");
    var result = await post(form.getAttribute("data-url"), { resume: resume, by: name });
    if (result.ok) {
      outcome(form, result.data.message || "answered", "ok");
      form.classList.add("answered");
      form.querySelectorAll("input, select, textarea, button").forEach(function (el) { el.disabled = true; });
      return;
    }
    button.disabled = false;
    outcome(form, result.data.message || "refused", "bad");
    if (result.status === 422) showErrors(form, result.data.errors);
  }

  function forkBody(form) {
    var body = { at: form.querySelector('[name="at"]').value, overrides: {} };
    var id = form.querySelector('[name="new_thread_id"]').value.trim();
    if (id) body.new_thread_id = id;
    form.querySelectorAll(".override").forEach(function (row) {
      var key = row.querySelector('[data-override="key"]').value;
      var text = row.querySelector('[data-override="value"]').value;
      try {
        body.overrides[key] = JSON.parse(text);
      } catch (e) {
        throw new Error("the override for key " + key + " is not JSON: " + e.message);
      }
    });
    return body;
  }

  async function act(form) {
    var action = form.getAttribute("data-action");
    var ask = form.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) return;
    var body = {};
    try {
      if (action === "fork") body = forkBody(form);
    } catch (e) {
      outcome(form, e.message, "bad");
      return;
    }
    outcome(form, "…");
    var result = await post(form.getAttribute("data-url"), body);
    if (!result.ok) {
      outcome(form, result.data.message || "refused", "bad");
      return;
    }
    if (action === "fork") {
      outcome(form, "forked: " + result.data.thread_id, "ok");
      window.location.assign("/threads/" + encodeURIComponent(result.data.thread_id));
    } else if (action === "cancel") {
      outcome(form, result.data.cancelled ? "cancelled" : "nothing to cancel", "ok");
      window.location.reload();
    } else {
      outcome(form, result.data.message || "done", "ok");
      watch(form.getAttribute("data-url").replace(/\/resume$/, ""));
    }
  }

  // After a resume: look at the thread until its run changes, then show the page again (it polls from there).
  function watch(api) {
    var live = document.getElementById("live");
    var before = live ? live.getAttribute("data-status") + "/" + live.getAttribute("data-run") : "";
    var tries = 0;
    var timer = window.setInterval(async function () {
      tries += 1;
      var response = await fetch(api, { credentials: "same-origin" });
      var data = response.ok ? await response.json() : null;
      if (tries > 120 || (data && data.status + "/" + data.run_id !== before)) {
        window.clearInterval(timer);
        window.location.reload();
      }
    }, 500);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("form.answer")) {
      event.preventDefault();
      answer(form);
    } else if (form.matches("form.action")) {
      event.preventDefault();
      act(form);
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches("button.add-override")) {
      var form = target.closest("form");
      var row = form.querySelector("template.override-row").content.cloneNode(true);
      form.querySelector(".overrides").append(row);
    } else if (target.matches("button.remove-override")) {
      target.closest(".override").remove();
    }
  });

  // The live part of a thread page: reload the page when the questions or the status change, so the forms
  // and actions below it match the run again.
  var live = document.getElementById("live");
  var seen = live ? live.getAttribute("data-status") + "/" + live.getAttribute("data-pending") : null;
  document.body.addEventListener("htmx:afterSwap", function () {
    var now = document.getElementById("live");
    if (!now || seen === null) return;
    var state = now.getAttribute("data-status") + "/" + now.getAttribute("data-pending");
    if (state !== seen) window.location.reload();
  });

  var saved = localStorage.getItem("durable.by");
  if (saved) {
    document.querySelectorAll("input.by").forEach(function (el) { if (!el.value) el.value = saved; });
  }
})();
