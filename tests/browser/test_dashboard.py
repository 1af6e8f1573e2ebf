"""A PMO opens the portfolio dashboard, filters it by business unit, reads why initiatives are
stalled, and downloads the CSV for the steering committee."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.dashboard.portfolio import hand_built_portfolio

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Git-ignored (var/): screenshots to look at after a run, never committed.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def test_pmo_filters_reads_stall_causes_and_downloads_the_csv(live_server, page, login):
    hand_built_portfolio()
    login("priya")

    page.goto(f"{live_server.url}/")  # `/` is the PMO's home
    page.wait_for_selector("#stalled")
    assert page.url == f"{live_server.url}/dashboard/"
    assert page.locator("#funnel svg[role=img] title").first.text_content() == (
        "Initiatives per stage, in lifecycle order"
    )
    assert page.locator("tr.stalled-row").count() == 3
    causes = page.locator("tr.stalled-row[data-key=AI-C2] .stall-causes li").all_inner_texts()
    assert causes[:3] == [
        "no business owner",
        "no success metric with both a baseline and a target",
        "1 overdue milestone (oldest 5 days late)",
    ]
    _shot(page, "all")

    page.select_option("#id_unit", "finance")
    page.click("form.dashboard-filters input[type=submit]")
    page.wait_for_url("**/dashboard/?*unit=finance*")
    rows = page.locator("tr.stalled-row")
    assert [rows.nth(n).get_attribute("data-key") for n in range(rows.count())] == ["AI-F1"]
    assert "Target workflow named" in page.inner_text("tr.stalled-row[data-key=AI-F1]")
    assert "AI-C2" not in page.inner_text("#content-main")
    _shot(page, "finance")

    with page.expect_download() as info:
        page.click("#portfolio-csv")
    download = info.value
    assert download.suggested_filename.startswith("portfolio-")
    assert download.suggested_filename.endswith("-finance.csv")
    with open(download.path(), encoding="utf-8-sig", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["Key"] for r in csv_rows] == ["AI-F1", "AI-F2", "AI-F3"]
    f1 = csv_rows[0]
    assert (f1["Business unit"], f1["Stage"], f1["Stalled"]) == ("finance", "Proposed", "yes")
    assert "Target workflow named" in f1["Stall causes"]
    assert csv_rows[1]["Name"].startswith("'=")  # a formula stays text in a spreadsheet
    assert csv_rows[2]["Stalled"] == "no"
