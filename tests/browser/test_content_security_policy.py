"""The Content-Security-Policy holds on every page a person opens: no violation reported by
headless Chromium on the admin, the Swagger UI and Redoc."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs before any page script, outside the page's CSP.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def violations(page):
    console: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            console.append(message.text)
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )

    def collect() -> list[str]:
        return [*console, *page.evaluate("window.__cspViolations || []")]

    return collect


def test_admin_and_api_docs_raise_no_csp_violation(live_server, page, login, violations):
    UserFactory(username="csp-admin", is_staff=True, is_superuser=True)

    response = page.goto(f"{live_server.url}/admin/login/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert violations() == []

    login("csp-admin")
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#content-main")
    assert violations() == []

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    page.wait_for_load_state("networkidle")
    assert violations() == []

    page.goto(f"{live_server.url}/api/redoc/")
    page.wait_for_selector("redoc h1, .api-content h1", timeout=20000)
    page.wait_for_load_state("networkidle")
    assert violations() == []
