"""The widget's loader: the kernel's widget carries ~1.7 KB that import the
bundle from the Jupyter server (nbchat/assets.py). Where the server runs without nbchat's
extension (nbchat installed in the kernel's environment only), the page says so in words."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab, make_lab
from tests.support.widgets import room_notebook


@pytest.fixture(scope="module")
def lab_without_nbchat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server = make_lab(tmp_path_factory.mktemp("bare-lab"))
    # The user's config turns the extension off (it wins over the install's, which turns it on).
    config = server.root / "home" / "config"
    config.mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"nbchat": False}}})
    )
    server.start()
    yield server
    server.stop()


def test_a_server_without_the_extension_gets_a_clear_message_in_the_widget(
    lab_without_nbchat: Lab, new_user
) -> None:
    page = new_user()
    path = room_notebook(lab_without_nbchat, "e2e-bare", "e2e-bare-room")
    open_and_run(page, lab_without_nbchat, path)
    alert = page.locator(".nbchat-load-error")
    expect(alert).to_be_visible(timeout=60_000)
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("nbchat could not load its chat from this Jupyter server")
    expect(alert).to_contain_text("Is the nbchat server extension enabled here?")
    expect(alert).to_contain_text("nbchat/static/widget.js?v=")
    # The import's URL carries the XSRF token (a hub needs it); what is shown does not.
    assert page.evaluate("() => document.cookie.includes('_xsrf=')")
    expect(alert).not_to_contain_text("_xsrf")
