// The page's behaviour: the calls of the JSON/HTTP API (/v1/...), same origin.
// Passwords, the API token and the cancel secret stay in this script's memory:
// never in storage, cookies or URLs.
"use strict";

(function () {
  const M = JSON.parse(document.getElementById("messages").textContent);
  const lang = document.body.dataset.lang;
  const isPrivate = document.body.dataset.mode === "private";
  const $ = (id) => document.getElementById(id);

  // t is the message key in the page's language, with {name} filled from vars.
  function t(key, vars) {
    return (M[key] || key).replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? String(vars[k]) : ""));
  }

  function number(n) { return Number(n || 0).toLocaleString(lang); }

  function bytes(n) {
    n = Number(n || 0);
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(1)).toLocaleString(lang) + " " + units[i];
  }

  // ApiError is an answer other than 2xx: the HTTP status and the service's body.
  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.message) || ("HTTP " + status));
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  function headers() {
    const h = { "Content-Type": "application/json", "Accept": "application/json" };
    if (isPrivate && $("token").value) h["Authorization"] = "Bearer " + $("token").value.trim();
    return h;
  }

  async function call(method, path, body) {
    const resp = await fetch(path, {
      method, headers: headers(), credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw new ApiError(resp.status, data, resp.headers.get("Retry-After"));
    return data;
  }

  // explain turns an ApiError into a sentence for a person.
  function explain(err) {
    if (!(err instanceof ApiError)) return t("error", { message: err.message });
    switch (err.status) {
      case 401: return t("unauthorized");
      case 404: return t("not_found");
      case 409: return t("already_exists");
      case 429: return t("too_many", { seconds: err.retryAfter || "60" });
      default: return err.message;
    }
  }

  function say(el, text, kind) {
    el.textContent = text;
    el.className = "result" + (kind ? " " + kind : "");
  }

  // --- the two accounts -------------------------------------------------------

  const accounts = {};

  function setupAccount(name) {
    const section = $(name);
    const a = {
      name, role: section.dataset.role, ok: false, presets: {},
      form: section.querySelector("form"),
      provider: $(name + "-provider"), login: $(name + "-login"), password: $(name + "-password"),
      host: $(name + "-host"), port: $(name + "-port"), security: $(name + "-security"),
      help: $(name + "-help"), locked: $(name + "-locked"), result: $(name + "-result"),
    };
    accounts[name] = a;

    a.provider.addEventListener("change", () => { applyPreset(a); untested(a); });
    for (const el of [a.login, a.password, a.host, a.port, a.security]) {
      el.addEventListener("input", () => untested(a));
      el.addEventListener("change", () => untested(a));
    }
    a.form.addEventListener("submit", (ev) => { ev.preventDefault(); testAccount(a); });
    loadProviders(a);
  }

  async function loadProviders(a) {
    try {
      const data = await call("GET", "/v1/providers?role=" + a.role);
      a.provider.replaceChildren();
      for (const p of data.providers || []) {
        a.presets[p.id] = p;
        const opt = document.createElement("option");
        opt.value = p.id;
        opt.textContent = p.id === "other" ? t("provider_other") : p.displayName;
        a.provider.append(opt);
      }
      // "Other" last, as in the seed's list.
      const other = a.provider.querySelector('option[value="other"]');
      if (other) a.provider.append(other);
      applyPreset(a);
    } catch (err) {
      say(a.result, explain(err), "error");
    }
  }

  // applyPreset fills and locks the server settings a preset fixes; "other" (and a
  // preset whose host differs per customer) leaves them free.
  function applyPreset(a) {
    const p = a.presets[a.provider.value] || {};
    const fixedHost = Boolean(p.host) && !p.hostRequired;
    a.help.textContent = p.help || "";
    a.host.value = fixedHost ? p.host : (a.host.readOnly ? "" : a.host.value);
    a.port.value = p.port || (a.port.readOnly ? "" : a.port.value) || 993;
    if (p.security && p.security !== "SECURITY_UNSPECIFIED") a.security.value = p.security;
    a.host.readOnly = fixedHost;
    a.port.readOnly = Boolean(p.port);
    a.security.disabled = Boolean(p.security && p.security !== "SECURITY_UNSPECIFIED");
    a.locked.hidden = !fixedHost;
  }

  function accountBody(a) {
    const p = a.presets[a.provider.value] || {};
    const body = { provider: a.provider.value, login: a.login.value.trim(), password: a.password.value };
    if (!p.host || p.hostRequired) body.host = a.host.value.trim();
    if (!p.port) body.port = Number(a.port.value) || 0;
    if (!p.security || p.security === "SECURITY_UNSPECIFIED") body.security = a.security.value;
    return body;
  }

  function untested(a) {
    if (!a.ok) return;
    a.ok = false;
    say(a.result, "");
    updateSyncButton();
  }

  async function testAccount(a) {
    a.ok = false;
    updateSyncButton();
    say(a.result, t("testing"), "busy");
    try {
      const r = await call("POST", "/v1/accounts:test", { account: accountBody(a), role: a.role });
      if (r.ok) {
        a.ok = true;
        say(a.result, t("test_ok") + ". " + t("test_counts", { folders: number(r.folderCount), messages: number(r.messageCount) }), "ok");
      } else {
        say(a.result, t("test_failed", { message: r.message }), "error");
      }
    } catch (err) {
      say(a.result, explain(err), "error");
    }
    updateSyncButton();
  }

  // --- synchronize ----------------------------------------------------------

  const cancelSecrets = {}; // source address -> the secret StartSync returned, in memory only

  function updateSyncButton() {
    const ready = accounts.source.ok && accounts.destination.ok;
    $("sync-button").hidden = !ready;
    $("check-button").hidden = !ready;
    $("sync-hint").hidden = ready;
    if (!ready) $("plan-view").replaceChildren();
  }

  function syncRequest() {
    return {
      source: accountBody(accounts.source),
      destination: accountBody(accounts.destination),
      options: { language: lang },
    };
  }

  // duration says a number of seconds in the unit a person plans with.
  function duration(secs) {
    secs = Number(secs || 0);
    if (secs >= 2 * 86400) return t("duration_days", { n: (secs / 86400).toFixed(1) });
    if (secs >= 2 * 3600) return t("duration_hours", { n: Math.round(secs / 3600) });
    if (secs < 90) return t("duration_short");
    return t("duration_minutes", { n: Math.round(secs / 60) });
  }

  // checkSync asks for the pre-flight verdict (PlanSync) of the request Synchronize
  // would send, and shows it: nothing is started.
  // The button is not disabled while the check runs: a disabled button loses the
  // keyboard's focus. A second press while one runs is ignored.
  let checking = false;
  async function checkSync() {
    if (checking) return;
    checking = true;
    const view = $("plan-view");
    view.replaceChildren(paragraph(t("checking"), "busy"));
    $("check-button").setAttribute("aria-busy", "true");
    try {
      renderPlan(await call("POST", "/v1/syncs:plan", syncRequest()));
    } catch (err) {
      view.replaceChildren(paragraph(explain(err), "error"));
    } finally {
      checking = false;
      $("check-button").removeAttribute("aria-busy");
    }
  }

  function renderPlan(plan) {
    const parts = [];
    const head = paragraph(t(plan.blocking ? "plan_blocking" : "plan_ok"), plan.blocking ? "error" : "ok");
    head.classList.add("plan-verdict");
    head.dataset.blocking = String(Boolean(plan.blocking));
    parts.push(head);
    const findings = plan.findings || [];
    if (findings.length) {
      const ul = document.createElement("ul");
      ul.className = "findings";
      for (const f of findings) {
        const li = document.createElement("li");
        li.textContent = f.message;
        li.dataset.kind = f.kind;
        if (f.blocking) li.className = "blocking";
        ul.append(li);
      }
      parts.push(ul);
    }
    parts.push(paragraph(t("plan_figures", {
      messages: number(plan.messagesToCopy), bytes: bytes(plan.bytesToCopy),
      present: number(plan.messagesPresent), duration: duration(plan.estimate && plan.estimate.seconds),
    })));
    const q = plan.destinationQuota;
    if (q && Number(q.limitBytes) > 0) {
      parts.push(paragraph(t("plan_quota", { free: bytes(plan.destinationFreeBytes), limit: bytes(q.limitBytes), required: bytes(plan.requiredBytes) })));
    }
    if (plan.folders && plan.folders.length) {
      const h = document.createElement("h3");
      h.textContent = t("plan_folders_heading");
      const ul = document.createElement("ul");
      ul.className = "folders plan-folders";
      for (const f of plan.folders) {
        const li = document.createElement("li");
        li.textContent = t("plan_folder_item", {
          source: f.sourceName, destination: f.destinationName,
          copy: number(f.messagesToCopy), present: number(f.messagesPresent),
        }) + (f.renameReason ? " (" + f.renameReason + ")" : "");
        ul.append(li);
      }
      parts.push(h, ul);
    }
    $("plan-view").replaceChildren(...parts);
  }

  async function startSync() {
    const result = $("sync-result");
    say(result, t("starting"), "busy");
    $("sync-button").disabled = true;
    try {
      const r = await call("POST", "/v1/syncs", syncRequest());
      const address = r.status.sourceEmail;
      cancelSecrets[address] = r.cancelSecret;
      say(result, t("sync_started"), "ok");
      $("status-address").value = address;
      follow(address);
    } catch (err) {
      say(result, explain(err), "error");
    } finally {
      $("sync-button").disabled = false;
    }
  }

  // --- the status -------------------------------------------------------------

  let watching = null; // the AbortController of the open watch stream

  async function follow(address) {
    if (watching) watching.abort();
    const ctl = new AbortController();
    watching = ctl;
    const view = $("status-view");
    view.replaceChildren(paragraph(t("loading"), "busy"));
    let last = null;
    try {
      const resp = await fetch("/v1/syncs/" + encodeURIComponent(address) + ":watch", {
        headers: headers(), credentials: "same-origin", cache: "no-store", signal: ctl.signal,
      });
      if (!resp.ok) {
        let data = null;
        try { data = await resp.json(); } catch (e) { data = null; }
        throw new ApiError(resp.status, data, resp.headers.get("Retry-After"));
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.error) throw new ApiError(httpStatus(msg.error.code), msg.error);
          if (msg.result && msg.result.status) {
            last = msg.result.status;
            render(address, last);
          }
        }
      }
      if (last && !terminal(last.state)) view.append(paragraph(t("stream_lost"), "error"));
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (last) {
        view.append(paragraph(t("stream_lost"), "error"));
      } else {
        view.replaceChildren(paragraph(explain(err), "error"));
      }
    }
  }

  // httpStatus maps a gRPC code inside the stream to the HTTP status explain knows.
  function httpStatus(code) {
    return { 5: 404, 8: 429, 16: 401, 7: 403, 6: 409 }[code] || 500;
  }

  function terminal(state) {
    return ["SYNC_STATE_COMPLETED", "SYNC_STATE_COMPLETED_WITH_ERRORS", "SYNC_STATE_FAILED", "SYNC_STATE_CANCELLED"].includes(state);
  }

  function paragraph(text, kind) {
    const p = document.createElement("p");
    p.textContent = text;
    if (kind) p.className = "result " + kind;
    return p;
  }

  function bar(label, done, total) {
    const wrap = document.createElement("div");
    wrap.className = "bar";
    const id = "bar-" + Math.random().toString(36).slice(2);
    const l = document.createElement("label");
    l.htmlFor = id;
    l.textContent = label;
    const p = document.createElement("progress");
    p.id = id;
    p.max = Math.max(Number(total) || 0, 1);
    p.value = Math.min(Number(done) || 0, p.max);
    wrap.append(l, p);
    return wrap;
  }

  function render(address, st) {
    const view = $("status-view");
    const parts = [];
    const kind = { SYNC_STATE_COMPLETED: "ok", SYNC_STATE_FAILED: "error", SYNC_STATE_COMPLETED_WITH_ERRORS: "warn" }[st.state] || "";
    const head = paragraph(t("state_" + st.state), kind);
    head.classList.add("state");
    head.dataset.state = st.state;
    parts.push(head);
    if (st.retryReason) parts.push(paragraph(t("retrying", { reason: st.retryReason })));
    if (st.state === "SYNC_STATE_FAILED" && st.failureReason) parts.push(paragraph(t("what_to_do", { reason: st.failureReason })));
    const tot = st.total || {};
    if (Number(tot.messagesTotal) > 0) {
      const done = Number(tot.messagesCopied || 0) + Number(tot.messagesPresent || 0) + Number(tot.messagesFailed || 0) + Number(tot.messagesSkipped || 0);
      parts.push(bar(t("progress_messages", { done: number(done), total: number(tot.messagesTotal) }), done, tot.messagesTotal));
      parts.push(bar(t("progress_bytes", { done: bytes(tot.bytesCopied), total: bytes(tot.bytesTotal) }), tot.bytesCopied, tot.bytesTotal));
    }
    if (st.folders && st.folders.length) {
      const h = document.createElement("h3");
      h.textContent = t("folders_heading");
      const ul = document.createElement("ul");
      ul.className = "folders";
      for (const f of st.folders) {
        const li = document.createElement("li");
        const p = f.progress || {};
        const fdone = Number(p.messagesCopied || 0) + Number(p.messagesPresent || 0);
        li.textContent = f.sourceName + (f.destinationName && f.destinationName !== f.sourceName ? " → " + f.destinationName : "") +
          ": " + number(fdone) + " / " + number(p.messagesTotal) + (f.reason ? " (" + f.reason + ")" : "");
        ul.append(li);
      }
      parts.push(h, ul);
    }
    if (st.failedMessages && st.failedMessages.length) {
      const h = document.createElement("h3");
      h.textContent = t("refused_heading");
      const ul = document.createElement("ul");
      ul.className = "refused";
      for (const m of st.failedMessages) {
        const li = document.createElement("li");
        li.textContent = t("refused_item", { folder: m.folder, uid: m.sourceUid, size: bytes(m.size), reason: m.reason });
        ul.append(li);
      }
      parts.push(h, ul);
    }
    if (!terminal(st.state) && (cancelSecrets[address] || isPrivate)) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = t("cancel_button");
      b.addEventListener("click", () => cancelSync(address));
      parts.push(b);
    }
    view.replaceChildren(...parts);
  }

  async function cancelSync(address) {
    try {
      await call("POST", "/v1/syncs/" + encodeURIComponent(address) + ":cancel", { cancelSecret: cancelSecrets[address] || "" });
      $("status-view").append(paragraph(t("cancel_requested"), "busy"));
    } catch (err) {
      $("status-view").append(paragraph(explain(err), "error"));
    }
  }

  // --- start ------------------------------------------------------------------

  setupAccount("source");
  setupAccount("destination");
  $("sync-button").addEventListener("click", startSync);
  $("check-button").addEventListener("click", checkSync);
  $("status").querySelector("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const address = $("status-address").value.trim();
    if (address) follow(address);
  });
  if (isPrivate) {
    $("token").addEventListener("change", () => {
      loadProviders(accounts.source);
      loadProviders(accounts.destination);
    });
  }
})();
