"""Lists longer than one of FC's pages (100 items, then a ``nextToken``): the console follows the
tokens and shows every service of the account — each once — not the first hundred. (A service
holds at most 50 functions, so its function list is one page; versions, aliases and triggers
follow tokens through the same ``ApiClient.listAll``.)"""

from __future__ import annotations

from consolekit import Console
from fcdkit import ACCESS_KEY_ID, ACCESS_KEY_SECRET, unique

ROWS = "return Array.from(document.querySelectorAll(arguments[0])).map((e) => e.dataset[arguments[1]]);"


def test_services_beyond_the_first_page_are_all_listed(console: Console, new_service):
    prefix = unique("page")
    services = [new_service(f"{prefix}-{i:03d}") for i in range(105)]

    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    console.el(f'#services-table tr[data-service="{services[-1]}"]')
    shown = console.driver.execute_script(ROWS, "#services-table tr[data-service]", "service")
    assert set(services) <= set(shown), sorted(set(services) - set(shown))[:5]
    assert len(shown) == len(set(shown)), "a service is listed twice"
    assert not console.driver.find_elements("css selector", "#services-truncated")
    console.no_error()
