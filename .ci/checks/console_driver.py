"""Drives the admin console in headless Chromium through chromedriver's WebDriver HTTP API
(Python standard library only): sign in, create a workspace, add and test a sandbox account,
create a key and see it once, call with it, see the usage chart, revoke the key, read the audit.
Saves a screenshot of each step. Used by console.sh."""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

DRIVER, ADMIN, MAIN, TOKEN, SHOTS, PROFILE = sys.argv[1:7]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
WEBSITE = "8c842203-7ed8-4e29-a608-7cf78a7d2fcc"


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


session = None


def wd(method, path, body=None):
    status, text = http(method, f"{DRIVER}/session/{session}{path}", body)
    value = json.loads(text).get("value")
    if status != 200:
        raise RuntimeError(f"WebDriver {method} {path}: {status} {value}")
    return value


def find(selector):
    return wd("POST", "/element", {"using": "css selector", "value": selector})[ELEMENT]


def js(script, *args):
    return wd("POST", "/execute/sync", {"script": script, "args": list(args)})


def until(what, check, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except RuntimeError:
            pass
        time.sleep(0.1)
    shot("failed")
    raise SystemExit(f"FAIL: {what} (after {timeout} s)")


def visible(selector):
    return js("const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');", selector)


def text(selector):
    return js("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", selector)


def click(selector):
    wd("POST", f"/element/{find(selector)}/click", {})


def type_in(selector, value):
    element = find(selector)
    wd("POST", f"/element/{element}/clear", {})
    wd("POST", f"/element/{element}/value", {"text": value})


def shot(name):
    png = base64.b64decode(wd("GET", "/screenshot"))
    with open(os.path.join(SHOTS, f"{name}.png"), "wb") as out:
        out.write(png)


def tab(name):
    click(f'nav button[data-tab="{name}"]')
    until(f"the {name} tab opens", lambda: visible(f"#tab-{name}"))


def ok(message):
    print(f"ok: {message}", flush=True)


status, text_ = http("POST", f"{DRIVER}/session", {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={PROFILE}", "--window-size=1366,900",
    ]},
}}})
if status != 200:
    raise SystemExit(f"FAIL: chromedriver did not start a session: {text_[:500]!r}")
session = json.loads(text_)["value"]["sessionId"]
try:
    wd("POST", "/window/rect", {"width": 1366, "height": 900})
    wd("POST", "/url", {"url": f"{ADMIN}/admin/"})
    until("the sign-in form shows", lambda: visible("#signin-form"))
    type_in("#token", "sk_admin_wrong")
    click("#sign-in")
    until("a wrong token is refused in plain words", lambda: "admin token" in text("#notice"))
    type_in("#token", TOKEN)
    click("#sign-in")
    until("signing in opens the console", lambda: visible("#app"))
    ok("signed in with an admin token (a wrong one was refused)")

    tab("workspaces")
    type_in("#ws-name", "acme")
    click("#create-workspace")
    until("the new workspace is listed", lambda: "acme" in text("#workspaces-table"))
    until("the workspace is picked", lambda: js("return document.querySelector('#workspace').value") == "acme")
    ok("created workspace acme")

    tab("accounts")
    type_in("#acc-label", "main")
    type_in("#acc-identifier", "sandbox-id")
    type_in("#acc-key", "sandbox-key")
    type_in("#acc-website", WEBSITE)
    click("#acc-default")
    click("#add-account")
    until("the account is listed", lambda: "sandbox-id" in text("#accounts-table"))
    click("#accounts-table button.test")
    until("the account test says it works", lambda: "works" in text("#test-result") and "Testing" not in text("#test-result"))
    if "sandbox-key" in wd("GET", "/source"):
        raise SystemExit("FAIL: the Crisp key appears in the page")
    shot("02-account-tested")
    ok(f"added and tested an account: {text('#test-result')[:80]}")

    tab("keys")
    type_in("#key-name", "support-bot")
    type_in("#key-quota", "1000/day")
    click("#create-key")
    until("the new key is shown", lambda: visible("#new-key") and text("#new-key-secret").startswith("sk_live_"))
    key = text("#new-key-secret")
    key_id = key.split("_")[2]
    click("#copy-key")
    shot("03-key-created")
    ok(f"created key {key_id}, shown once")
    wd("POST", "/refresh", {})
    until("the console reloads", lambda: visible("#keys-table") and key_id in text("#keys-table"))
    if key in wd("GET", "/source") or visible("#new-key"):
        raise SystemExit("FAIL: the key is shown again after a reload")
    ok("after a reload the key is listed but not shown")

    actions = ["list/conversations"] * 4 + ["get/website"] * 2 + ["get/website/settings"] * 2
    for action in actions:
        status, body = http("POST", f"{MAIN}/api/crisp/{action}", {}, {"Authorization": f"Bearer {key}"})
        if status != 200:
            raise SystemExit(f"FAIL: {action} with the new key answered {status}: {body[:300]!r}")
    ok(f"made {len(actions)} calls with the key")

    tab("usage")
    def chart_has_bars():
        click('nav button[data-tab="usage"]')
        time.sleep(0.3)
        return js("return document.querySelectorAll('#usage-chart svg rect').length") > 0
    until("the usage chart draws the calls", chart_has_bars, timeout=30)
    until("the chart counts every call", lambda: str(len(actions)) in text("#usage-chart .legend"), timeout=30)
    shot("04-usage-by-key")
    wd("POST", f"/element/{find('#usage-by')}/value", {"text": "action"})
    until("the chart splits by action", lambda: "list/conversations" in text("#usage-chart .legend"))
    shot("05-usage-by-action")
    ok(f"the usage chart shows the calls: {text('#usage-chart .legend')[:120]}")

    tab("keys")
    until("the key is listed", lambda: key_id in text("#keys-table"))
    click(f'#keys-table button.revoke[data-id="{key_id}"]')
    until("the confirm dialog opens and is accepted", lambda: wd("POST", "/alert/accept", {}) or True, timeout=5)
    until("the key shows as revoked", lambda: "revoked" in text(f'#keys-table tr[data-key="{key_id}"]'))
    shot("06-key-revoked")
    def refused():
        status, _ = http("POST", f"{MAIN}/api/crisp/list/conversations", {}, {"Authorization": f"Bearer {key}"})
        return status == 401
    until("the revoked key is refused by the gateway", refused, timeout=2)
    ok("revoked the key in the console; the gateway refuses it")

    tab("audit")
    type_in("#audit-action", "admin/*")
    click("#audit-form button")
    until("the audit lists the admin changes", lambda: "admin/key/revoke" in text("#audit-table"))
    shot("07-audit")
    ok("the audit trail lists the console's changes")
    if key in wd("GET", "/source"):
        raise SystemExit("FAIL: the key appears in the page")
    print(key, file=open(os.path.join(SHOTS, ".key"), "w"))
finally:
    http("DELETE", f"{DRIVER}/session/{session}")
