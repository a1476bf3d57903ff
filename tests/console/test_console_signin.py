"""Signing in to the console in a real browser: FC's error for a wrong secret or an unknown key,
the key id shown once signed in, the keys kept in page memory only (nothing in the URL, web
storage or cookies; a reload signs out), signing out, and the keyboard alone getting in."""

from __future__ import annotations

from consolekit import Console
from fcdkit import ACCESS_KEY_ID, ACCESS_KEY_SECRET


def whoami(console: Console) -> str | None:
    """The text of a shown ``#whoami``, None when there is none."""
    shown = [e for e in console.driver.find_elements("css selector", "#whoami") if e.is_displayed()]
    return shown[0].text if shown else None


def assert_nothing_stored(console: Console, *secrets: str) -> None:
    d = console.driver
    for s in secrets:
        assert s not in d.current_url, d.current_url
    stored = d.execute_script(
        "return [window.localStorage.length, window.sessionStorage.length, document.cookie];"
    )
    assert stored == [0, 0, ""], f"the console stored something: {stored}"


def test_sign_in_wrong_secret_shows_fc_error_then_right_key_signs_in(console: Console):
    console.open()
    console.el("#signin-form")
    console.shot("signin")
    # A wrong secret: the server refuses the signature, and the page says so with FC's code.
    console.sign_in(ACCESS_KEY_ID, "not-the-secret", expect_ok=False)
    code, text = console.error(within="#signin-error")
    assert code == "SignatureNotMatch", text
    console.shot("signin-wrong-secret")
    assert ACCESS_KEY_ID not in (whoami(console) or "")
    assert_nothing_stored(console, "not-the-secret")

    # An unknown key id.
    console.sign_in("noSuchKeyId", "whatever", expect_ok=False)
    code, text = console.error(within="#signin-error")
    assert code == "InvalidAccessKeyID", text

    # The right pair: the key id is shown, the services page is up, no error.
    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    assert ACCESS_KEY_ID in (whoami(console) or ""), whoami(console)
    console.el("#services-table")
    console.no_error()
    console.shot("services")
    assert_nothing_stored(console, ACCESS_KEY_SECRET)
    # Nor anywhere in the document's markup or text.
    assert ACCESS_KEY_SECRET not in console.driver.page_source
    assert ACCESS_KEY_SECRET not in console.driver.execute_script("return document.body.innerText")


def test_reload_and_sign_out_forget_the_keys(console: Console):
    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    # A reload signs out: the keys were only in the page's memory.
    console.driver.refresh()
    console.el("#signin-form")
    assert ACCESS_KEY_ID not in (whoami(console) or "")
    # Sign in again, then out with the button.
    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    console.click("#signout")
    console.el("#signin-form")
    assert console.el("#ak-secret").get_attribute("value") == ""
    assert_nothing_stored(console, ACCESS_KEY_SECRET)


def test_pages_raise_no_csp_violation_or_script_error(console: Console):
    """Chromium reports a blocked inline script/style or an uncaught error in the page's
    console: a signed-in tour of the services page must produce none."""
    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    console.el("#create-service-form")
    console.assert_clean_log()


def test_keyboard_alone_signs_in_and_opens_a_tab(console: Console, deployed):
    """Keyboard access: the form submits with Enter, and a function tab opens from the keyboard
    (focus it, press Enter) — no mouse."""
    from selenium.webdriver.common.keys import Keys

    svc, fn = deployed
    console.open()
    console.el("#ak-id").send_keys(ACCESS_KEY_ID, Keys.TAB)
    active = console.driver.switch_to.active_element
    assert active.get_attribute("id") == "ak-secret", "Tab from the key id does not reach the secret"
    active.send_keys(ACCESS_KEY_SECRET, Keys.ENTER)
    console.text_of("#whoami", ACCESS_KEY_ID)
    console.go(console.function_route(svc, fn))
    console.page("function")
    tab = console.el('[data-tab="logs"]')
    console.driver.execute_script("arguments[0].focus();", tab)
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    console.el("#logs-view")
