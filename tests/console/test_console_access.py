"""What a RAM user may do in the console is what the server lets its key do, never what the
page shows or hides: a user whose policies (made through the official RAM SDK) allow reading
and invoking but not updating can sign in, open the function and invoke it, and an attempt to
change the code from the code tab is refused by the server with FC's AccessDenied (shown with
its code), the code left as it was."""

from __future__ import annotations

import pytest
from alibabacloud_fc_open20210406 import models as fm

from consolekit import Console
from fcdkit import wait_until
from ramkit import RamFixture, allow, policy_document

pytestmark = pytest.mark.invoke


def test_invoke_only_user_can_invoke_but_the_server_refuses_a_code_update(
    console: Console, client, deployed, iam: RamFixture
):
    svc, fn = deployed
    user = iam.user(
        policy_document(
            # Reads, to open the pages; and invoking. No fc:UpdateFunction anywhere.
            allow(["fc:Get*", "fc:List*"], "*"),
            allow("fc:InvokeFunction", "*"),
        )
    )
    before = client.get_function(svc, fn, fm.GetFunctionRequest()).body

    console.sign_in(user.keys.access_key_id, user.keys.access_key_secret)
    console.text_of("#whoami", user.keys.access_key_id)
    console.el(f'#services-table tr[data-service="{svc}"]')
    console.open_function(svc, fn)

    # Invoking is allowed.
    console.tab("invoke")
    console.type("#invoke-payload", "from-ram-user")
    console.click("#invoke-submit")
    console.text_of("#invoke-body", "hello from-ram-user")
    console.no_error()

    # Changing the code is not: the page sends it, the server refuses it.
    console.tab("code")
    src = console.el("#update-source")
    src.clear()
    src.send_keys("def handler(event, context):\n    return 'should never run'\n")
    console.click("#update-code-submit")
    code, text = console.error("AccessDenied")
    assert "fc:UpdateFunction" in text, text
    assert user.arn in text or user.name in text, text
    console.shot("function-code-access-denied")

    # Nothing changed, as the root sees it through the SDK.
    assert not wait_until(
        lambda: client.get_function(svc, fn, fm.GetFunctionRequest()).body.code_checksum != before.code_checksum,
        2,
    ), "the code changed although the server said AccessDenied"
    after = client.get_function(svc, fn, fm.GetFunctionRequest()).body
    assert (after.code_checksum, after.code_size, after.last_modified_time) == (
        before.code_checksum,
        before.code_size,
        before.last_modified_time,
    )
    resp = client.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=b"still"))
    assert resp.body.decode() == "hello still"


def test_a_user_without_reads_sees_access_denied_on_the_services_page(
    console: Console, deployed, iam: RamFixture
):
    """Signing in does not need any FC permission, but listing services does: the page shows the
    server's AccessDenied rather than an empty list."""
    user = iam.user(policy_document(allow("fc:InvokeFunction", "*")))
    console.open()
    console.type("#ak-id", user.keys.access_key_id)
    console.type("#ak-secret", user.keys.access_key_secret)
    console.click("#signin-submit")
    code, text = console.error("AccessDenied")
    assert "fc:ListServices" in text, text
    console.shot("services-access-denied")
