"""The web pages in a real browser (headless Chromium driven by Playwright), as their users work
with them: an operator in the console, a ward unit on a phone, a citizen following a report.

Run by scripts/browser.sh, which starts `ioc demo --rate 0 --no-staff` and passes its addresses
and tokens in the environment. Fails on any uncaught JavaScript error and on any console error
other than the browser's own note about an HTTP error answer (several steps provoke refusals on
purpose). Screenshots of each step go to $IOC_ARTIFACTS.
"""

import json
import os
import sys
import time
import unicodedata
import urllib.request
from datetime import datetime, timedelta, timezone

from playwright.sync_api import expect, sync_playwright

INGEST = os.environ["IOC_INGEST"]
DASHBOARD = os.environ["IOC_DASHBOARD"]
OPERATOR = os.environ["IOC_OPERATOR_TOKEN"]
WARD_TOKEN = os.environ["IOC_WARD_TOKEN"]
WARD = os.environ["IOC_WARD"]
POLICE = os.environ["IOC_POLICE_TOKEN"]
CAMERA_KEY = os.environ["IOC_CAMERA_KEY"]
ARTIFACTS = os.environ.get("IOC_ARTIFACTS", "target/browser-artifacts")
WAIT_MS = 15_000

problems = []


def call(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def file_report(text):
    """A report far from every ward, so it waits in the operators' triage."""
    return call("POST", f"{INGEST}/v1/reports", {
        "channel": "app", "category": "environment", "text": text,
        "location": {"lat": 10.95, "lon": 107.05},
        "reporter": {"phone": "+84-912345678", "name": "Nguyễn Văn A"},
        "submitted_at": datetime.now(timezone.utc).isoformat(),
    })


def assign_over_api(incident, ward):
    """An operator's assignment over the API, tried for up to 10 s while the dashboard has not
    yet seen the report; the last refusal is raised."""
    for attempt in range(100):
        try:
            return call("POST", f"{DASHBOARD}/v1/incidents/{incident}/actions",
                        {"action": "assign", "ward_id": ward}, token=OPERATOR)
        except urllib.error.HTTPError:
            if attempt == 99:
                raise
            time.sleep(0.1)


def shown_in_tab(page, rows, text):
    """Opens the Violations tab, which follows the records' live stream while it is shown (the
    capture reaches the dashboard a moment after it is accepted), until a row of `rows` shows
    `text`; no reload, no second click."""
    page.get_by_role("tab", name="Vi phạm").click()
    expect(page.locator(rows, has_text=text).first).to_be_visible(timeout=WAIT_MS)


def watch(page, who):
    def on_console(msg):
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            problems.append(f"{who}: console error: {msg.text}")
    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"{who}: uncaught error: {e}"))


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def sign_in(page, path, token):
    page.goto(f"{DASHBOARD}{path}")
    page.get_by_label("Mã truy cập").fill(token)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
    assert "token" not in page.url, page.url


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )

        # An operator signs in; a wrong token is refused first.
        operator = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        watch(operator, "console")
        operator.goto(f"{DASHBOARD}/console")
        operator.get_by_label("Mã truy cập").fill("not-a-token")
        operator.get_by_role("button", name="Đăng nhập").click()
        expect(operator.locator("#signin-error")).to_have_text("Mã truy cập không đúng.", timeout=WAIT_MS)
        sign_in(operator, "/console", OPERATOR)
        shot(operator, "01-console-signed-in")

        # A report filed over the API appears in the queue without a reload.
        filed_at = time.monotonic()
        filed = file_report("Ngập nước sau mưa, xe máy chết máy")
        report_id = filed["tracking_id"]
        row = operator.locator(f'#queue tr[data-id="{report_id}"]')
        expect(row).to_be_visible(timeout=WAIT_MS)
        print(f"report on the operator's queue {time.monotonic() - filed_at:.2f} s after filing, no reload")
        assert "Nguyễn" not in operator.content() and "912345678" not in operator.content()

        # Keyboard: the row opens with Enter. A row in focus keeps it while other incidents
        # arrive on the live stream (the row is not drawn again).
        row.focus()
        row.evaluate("el => { el.dataset.probe = 'kept'; }")
        another = file_report("Rác thải đổ trộm ven kênh")["tracking_id"]
        expect(operator.locator(f'#queue tr[data-id="{another}"]')).to_be_visible(timeout=WAIT_MS)
        expect(row).to_have_attribute("data-probe", "kept")
        expect(row).to_be_focused()
        operator.keyboard.press("Enter")
        expect(operator.locator("#detail h2")).to_contain_text("environment", timeout=WAIT_MS)
        assert f"incident={report_id}" in operator.url
        # A refused action shows the server's reason: closing an unresolved incident.
        operator.get_by_role("form", name="Đóng").get_by_role("button").click()
        expect(operator.locator("#detail [role=alert]").first).to_contain_text("Không thực hiện được", timeout=WAIT_MS)
        operator.get_by_role("form", name="Xác minh").get_by_role("button").click()
        expect(operator.locator("#detail h2 .badge")).to_have_text("đã xác minh", timeout=WAIT_MS)
        # The ward is picked by its name typed without diacritics ("Phuong An Binh" for
        # "Phường An Bình").
        ward_name = next(f["properties"]["name"] for f in call("GET", f"{DASHBOARD}/v1/wards", token=OPERATOR)["features"]
                         if f["properties"]["id"] == WARD)
        bare = "".join(c for c in unicodedata.normalize("NFD", ward_name) if not unicodedata.combining(c))
        bare = bare.replace("đ", "d").replace("Đ", "D")
        assert bare != ward_name, ward_name
        assign = operator.get_by_role("form", name="Giao / chuyển")
        assign.get_by_label("Phường/xã").fill(bare)
        assign.get_by_role("button").click()
        try:
            expect(operator.locator("#detail h2 .badge")).to_have_text("đã giao", timeout=WAIT_MS)
        except AssertionError:
            # What the form said (a refusal's reason, or still waiting) and what the server holds.
            print("the assign form says:", assign.get_by_role("status").all_inner_texts(),
                  assign.get_by_role("alert").all_inner_texts())
            print("the incident now:", call("GET", f"{DASHBOARD}/v1/incidents/{report_id}", token=OPERATOR))
            raise
        expect(operator.locator("#detail")).to_contain_text(f"{ward_name} ({WARD})", timeout=WAIT_MS)
        shot(operator, "02-console-assigned")

        # Filters stay in the address: a reload keeps them.
        operator.locator("#filters select[name=status]").select_option("assigned")
        operator.wait_for_function("location.search.includes('status=assigned')", timeout=WAIT_MS)
        operator.reload()
        expect(operator.locator("#filters select[name=status]")).to_have_value("assigned", timeout=WAIT_MS)
        expect(operator.locator(f'#queue tr[data-id="{report_id}"]')).to_be_visible(timeout=WAIT_MS)

        # Another ward's incident, for the isolation check below.
        other = file_report("Lấn chiếm vỉa hè")["tracking_id"]
        wards = call("GET", f"{DASHBOARD}/v1/wards", token=OPERATOR)["features"]
        other_ward = next(f["properties"]["id"] for f in wards if f["properties"]["id"] != WARD)
        assign_over_api(other, other_ward)

        # The ward unit, on a phone-sized screen: acknowledge, start, resolve.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        unit = phone.new_page()
        watch(unit, "ward page")
        sign_in(unit, "/ward", WARD_TOKEN)
        task = unit.locator(f'article[data-id="{report_id}"]')
        expect(task).to_be_visible(timeout=WAIT_MS)
        assert unit.locator(f'article[data-id="{other}"]').count() == 0
        shot(unit, "03-ward-list")
        task.get_by_role("button", name="Tiếp nhận").click()
        expect(task.locator(".badge")).to_have_text("đã tiếp nhận", timeout=WAIT_MS)
        task.get_by_role("button", name="Bắt đầu xử lý").click()
        expect(task.locator(".badge")).to_have_text("đang xử lý", timeout=WAIT_MS)
        task.locator("summary", has_text="Báo kết quả").click()
        task.get_by_label("Kết quả xử lý").fill("Đã khơi thông cống, nước đã rút.")
        # A new assignment arriving on the live stream while the unit types adds a card; the card
        # being worked on is not drawn again (a button under a click stays the one clicked) and
        # what was typed stays.
        task.evaluate("el => { el.dataset.probe = 'kept'; }")
        third = file_report("Cống bị tắc")["tracking_id"]
        assign_over_api(third, WARD)
        expect(unit.locator(f'article[data-id="{third}"]')).to_be_visible(timeout=WAIT_MS)
        expect(task).to_have_attribute("data-probe", "kept")
        expect(task.get_by_label("Kết quả xử lý")).to_have_value("Đã khơi thông cống, nước đã rút.")
        task.get_by_role("form", name="Báo kết quả").get_by_role("button").click()
        expect(task).to_have_count(0, timeout=WAIT_MS)
        shot(unit, "04-ward-resolved")

        # A ward token sees no other ward's incident in any page.
        unit.goto(f"{DASHBOARD}/console?incident={other}")
        expect(unit.locator("#detail [role=alert]")).to_contain_text("This is not in your ward", timeout=WAIT_MS)
        assert unit.locator(f'#queue tr[data-id="{other}"]').count() == 0
        shot(unit, "05-ward-token-on-another-ward")

        # The citizen follows the status_url ingest gave, sees the result and confirms.
        citizen = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        watch(citizen, "citizen page")
        assert filed["status_url"].endswith(f"/r/{report_id}"), filed["status_url"]
        citizen.goto(filed["status_url"])
        expect(citizen.locator("#report h2 .badge")).to_have_text("đã có kết quả", timeout=WAIT_MS)
        expect(citizen.locator("#report")).to_contain_text("Đã khơi thông cống")
        assert "Nguyễn" not in citizen.content() and "912345678" not in citizen.content()
        shot(citizen, "06-citizen-result")
        citizen.get_by_role("button", name="Tôi đồng ý với kết quả").click()
        expect(citizen.locator("#report h2 .badge")).to_have_text("đã đóng", timeout=WAIT_MS)

        # English on request; dates in the city's time zone.
        citizen.get_by_role("button", name="English").click()
        expect(citizen.locator("h1")).to_have_text("Your report", timeout=WAIT_MS)
        shot(citizen, "07-citizen-closed-en")

        # The month's figures, on the page and as CSV: the citizen's confirmation is counted.
        operator.get_by_role("tab", name="Số liệu").click()
        ward_row = operator.locator("#figures tbody tr", has_text=f"({WARD})").filter(has_text="environment")
        expect(ward_row).to_be_visible(timeout=WAIT_MS)
        with operator.expect_download(timeout=WAIT_MS) as download:
            operator.get_by_role("button", name="Tải CSV").click()
        lines = open(download.value.path(), encoding="utf-8").read().splitlines()
        header = lines[0].split(",")
        assert header[:4] == ["ward", "category", "unit", "received"], header
        row = next(l for l in lines if l.startswith(f'"{WARD}","environment"'))
        assert row.split(",")[header.index("confirmed")] == '"1"', row
        shot(operator, "08-figures")

        # A red-light capture is an enforcement record, not an incident: counted on the
        # Violations tab, its plate shown to the traffic police only.
        call("POST", f"{INGEST}/v1/camera-events", [{
            "camera_id": "CAM-0001", "event_type": "red_light_violation", "confidence": 0.93,
            "detected_at": datetime.now(timezone.utc).isoformat(), "plate": "30A-999.99", "lane": "1",
        }], token=CAMERA_KEY)
        shown_in_tab(operator, "#violation-counts tbody tr", "red_light_violation")
        expect(operator.locator("#violation-latest tbody tr").first).to_contain_text("không có quyền xem")
        assert "30A-999.99" not in operator.content()
        shot(operator, "09-violations")
        police = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        watch(police, "police console")
        sign_in(police, "/console", POLICE)
        shown_in_tab(police, "#violation-latest tbody tr", "30A-999.99")
        # A second capture while the tab is open arrives on its live stream: a new row, and the
        # camera's count one higher, with nothing clicked.
        counted = police.locator("#violation-counts tbody tr", has_text="CAM-0001") \
            .filter(has_text="red_light_violation").locator("td").nth(3)
        before = int(counted.inner_text())
        asked = []
        police.on("request", lambda r: asked.append(r.url) if "/v1/violations" in r.url and "/stream" not in r.url else None)
        call("POST", f"{INGEST}/v1/camera-events", [{
            "camera_id": "CAM-0001", "event_type": "red_light_violation", "confidence": 0.91,
            "detected_at": datetime.now(timezone.utc).isoformat(), "plate": "30A-111.11", "lane": "2",
        }], token=CAMERA_KEY)
        expect(police.locator("#violation-latest tbody tr", has_text="30A-111.11")).to_be_visible(timeout=WAIT_MS)
        expect(counted).to_have_text(str(before + 1), timeout=WAIT_MS)
        assert not asked, f"the tab asked again instead of following its stream: {asked}"
        shot(police, "10-violations-police")

        # Two cameras 245 m apart see a flood: the demo attaches the second's incident to the
        # first's by itself, and the operator splits it off again from its page.
        now = datetime.now(timezone.utc)
        for camera, minutes_ago in [("CAM-0001", 3), ("CAM-0002", 1)]:
            call("POST", f"{INGEST}/v1/camera-events", [{
                "camera_id": camera, "event_type": "flooding", "confidence": 0.9,
                "detected_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
            }], token=CAMERA_KEY)
        attached = None
        deadline = time.monotonic() + WAIT_MS / 1000
        while attached is None and time.monotonic() < deadline:
            items = call("GET", f"{DASHBOARD}/v1/incidents?category=environment", token=OPERATOR)["items"]
            attached = next((i for i in items if i["source"].get("camera_id") == "CAM-0002"
                             and i["status"] == "duplicate"), None)
            time.sleep(0.2)
        assert attached is not None, "the second camera's flood was not attached"
        operator.goto(f"{DASHBOARD}/console?incident={attached['id']}")
        expect(operator.locator("#detail h2 .badge")).to_have_text("trùng", timeout=WAIT_MS)
        expect(operator.locator("#detail")).to_contain_text("system: automatic attach")
        expect(operator.locator("#detail")).to_contain_text(f"Trùng với {attached['duplicate_of']}")
        shot(operator, "11-console-attached")
        split = operator.get_by_role("form", name="Tách khỏi sự việc gốc")
        split.get_by_label("Lý do").fill("Hai điểm ngập khác nhau")
        split.get_by_role("button").click()
        expect(operator.locator("#detail h2 .badge")).not_to_have_text("trùng", timeout=WAIT_MS)
        after = call("GET", f"{DASHBOARD}/v1/incidents/{attached['id']}", token=OPERATOR)
        assert after["status"] != "duplicate" and "duplicate_of" not in after, after
        assert after["history"][-1]["action"] == "split", after["history"][-1]
        shot(operator, "12-console-split")

        # Signing out forgets the token.
        operator.get_by_role("button", name="Đăng xuất").click()
        expect(operator.locator("#signin")).to_be_visible(timeout=WAIT_MS)
        assert operator.evaluate("sessionStorage.getItem('ioc-token')") is None
        browser.close()

    if problems:
        sys.exit("JavaScript errors in the pages (above)")
    print("browser tests passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        if problems:
            print("\n".join(problems), file=sys.stderr)
