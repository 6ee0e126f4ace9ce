// Login page: POST /api/login, then back to the page that sent us here (same origin only).
"use strict";

const form = document.getElementById("login-form");
const message = document.getElementById("message");
const submit = document.getElementById("submit");

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this appliance: "/x" yes, "//host/x" or "https://..." no.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function say(text) {
  message.textContent = text;
  message.hidden = !text;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  submit.disabled = true;
  try {
    const response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        name: document.getElementById("name").value.trim(),
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) {
      location.replace(nextPage());
      return;
    }
    let text = `login failed (HTTP ${response.status})`;
    try {
      const body = await response.json();
      if (body.error && body.error.message) text = body.error.message;
    } catch (_) { /* not JSON: keep the status line */ }
    say(text);
  } catch (err) {
    say("no connection to the screening service");
  } finally {
    submit.disabled = false;
  }
});
