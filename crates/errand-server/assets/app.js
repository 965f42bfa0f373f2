// Errand's one script: live updates and small conveniences over server-rendered pages. Every
// page works without it except live updates. It never builds HTML from untrusted text: HTML it
// inserts comes from the server's own renderer (escaped there), and text it writes goes
// through textContent.
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // --- The work log, live -------------------------------------------------------------------
  const log = $("#log");
  let source = null;

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
  }

  function applyOp(op) {
    if (op.op === "add") {
      log.insertAdjacentHTML("beforeend", op.html);
    } else if (op.op === "append") {
      const pre = document.getElementById(op.target);
      if (!pre) return;
      pre.insertAdjacentHTML("beforeend", op.html);
      const count = document.getElementById("n-" + op.target.slice(2));
      if (count) count.textContent = op.count;
      const item = pre.closest("li");
      const preview = item && $(".preview", item);
      if (preview && preview.childElementCount === 0) {
        Array.from(pre.children).slice(0, 2).forEach((line) => {
          const span = document.createElement("span");
          span.className = "pl";
          span.textContent = line.textContent.slice(0, 160);
          preview.append(span);
        });
      }
    } else if (op.op === "replace") {
      const element = document.getElementById(op.target);
      if (!element) return;
      element.outerHTML = op.html;
      // A command's new status also settles its item: done, or failed (marked red).
      const status = document.getElementById(op.target);
      const item = op.target.startsWith("s-") && status && status.closest("li.cmd");
      if (item) {
        item.classList.remove("running");
        item.classList.add(status.classList.contains("failed") ? "failed" : "done");
      }
    } else if (op.op === "finished") {
      finished(op.state, op.reason);
    }
  }

  function finished(state, reason) {
    if (source) source.close();
    source = null;
    log.removeAttribute("data-live");
    const done = $("#done");
    if (done) {
      $("#done-text").textContent = "Finished: " + state + (reason ? " — " + reason : "");
      done.classList.remove("hidden");
    }
    ["#message-form", "#running-actions"].forEach((s) => { const e = $(s); if (e) e.classList.add("hidden"); });
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        new Notification("Errand: attempt " + state, { body: reason || "", tag: log.dataset.attempt });
      } catch (e) { /* some platforms only notify from a service worker */ }
    }
  }

  if (log && log.dataset.live) {
    const url = "/attempts/" + encodeURIComponent(log.dataset.attempt) + "/live?after=" + encodeURIComponent(log.dataset.after || "0");
    source = new EventSource(url);
    source.onmessage = (message) => {
      let ops;
      try { ops = JSON.parse(message.data); } catch (e) { return; }
      const follow = nearBottom();
      ops.forEach(applyOp);
      log.dataset.after = message.lastEventId;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    };
    // EventSource reconnects by itself, resuming after Last-Event-ID.
  }

  // --- Notifications ------------------------------------------------------------------------
  const notify = $("#notify");
  if (notify && "Notification" in window && Notification.permission === "default") {
    notify.classList.remove("hidden");
    notify.addEventListener("click", () => {
      Notification.requestPermission().then(() => notify.classList.add("hidden"));
    });
  }

  // --- Messages to a running attempt, without leaving the page -------------------------------
  const messageForm = $("#message-form");
  if (messageForm) {
    messageForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const status = $("#message-status");
      const body = new URLSearchParams(new FormData(messageForm));
      fetch(messageForm.action, { method: "POST", headers: { "x-errand-fetch": "1" }, body, credentials: "same-origin" })
        .then((response) => {
          if (response.ok) {
            $("#message").value = "";
            status.textContent = "Sent. The agent reads it at its next turn.";
          } else {
            return response.text().then((text) => { status.textContent = "Not sent: " + text; });
          }
        })
        .catch(() => { status.textContent = "Not sent: the server cannot be reached."; });
    });
  }

  // --- Log citations: #log-<seq>-L<start>-L<end> opens that command and highlights the lines -
  function showLogCitation() {
    const match = /^#log-(\d+)(?:-L(\d+)(?:-L(\d+))?)?$/.exec(location.hash);
    if (!match || !log) return;
    $$(".l.hl", log).forEach((line) => line.classList.remove("hl"));
    const item = document.getElementById("e" + match[1]);
    if (!item) return;
    const details = $("details.out", item);
    if (details) details.open = true;
    const pre = details && $("pre", details);
    const start = Number(match[2] || 0);
    const end = Number(match[3] || match[2] || 0);
    let first = null;
    if (pre && start > 0) {
      const lines = pre.children;
      for (let n = start; n <= end && n <= lines.length; n++) {
        lines[n - 1].classList.add("hl");
        first = first || lines[n - 1];
      }
    }
    (first || item).scrollIntoView({ block: "center" });
  }
  window.addEventListener("hashchange", showLogCitation);
  showLogCitation();

  // --- Copy buttons -------------------------------------------------------------------------
  $$("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => select(source));
      } else {
        select(source);
      }
    });
  });
  function select(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // --- The task list, refreshed while something runs ----------------------------------------
  const tasks = $("#tasks");
  if (tasks && tasks.dataset.live) {
    const refresh = () => {
      if (document.hidden) return;
      const url = new URL(location.href);
      url.searchParams.set("fragment", "1");
      fetch(url, { credentials: "same-origin" })
        .then((response) => (response.ok && !response.redirected ? response.text() : null))
        .then((html) => { if (html !== null) tasks.innerHTML = html; })
        .catch(() => {});
    };
    setInterval(refresh, 4000);
  }

  // --- Ctrl/Cmd+Enter submits the form a textarea is in -------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.tagName === "TEXTAREA") {
      const form = event.target.form;
      if (form) { event.preventDefault(); form.requestSubmit(); }
    }
  });
})();
