"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const err = document.getElementById("login-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const resp = await fetch("/api/login", {
      method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
      body: JSON.stringify({name: document.getElementById("login-name").value,
                            password: document.getElementById("login-password").value}),
    });
    if (resp.ok) { window.location.href = "/"; return; }
    let msg = "login failed";
    try { msg = (await resp.json()).detail || msg; } catch (e) { /* not JSON */ }
    const retry = resp.headers.get("Retry-After");
    err.textContent = retry ? msg + " (retry in " + retry + " s)" : msg;
  });
});
