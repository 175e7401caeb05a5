"""Links into the page (AppTest): values echoed from a link are literal text, cut short; a share link
past a safe length is refused, and the result is offered as a JSON download instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import messages, shown_text
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


# ----------------------------------------------------------------------------- link values in notices
# Values echoed from a link are literal text, cut short.


def rendered_html(markdown: str) -> str:
    """The Markdown body as CommonMark renders it (Streamlit's renderer adds GFM on top)."""
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").render(markdown))


def test_page_notices_show_link_values_as_literal_text(minilm, _fresh_caches: None) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["steps"] = "1"
    at.query_params["rule"] = "[Log in again](http://x)"
    at.query_params["model"] = ["all-MiniLM-L6-v2", "![x](http://x/p.png)"]
    at.run()
    assert not at.exception, messages(at.exception)
    body = "\n".join(str(w.value) for w in at.warning)
    assert "[Log in again](http://x)" in shown_text(body) and "![x](http://x/p.png)" in shown_text(body)
    html = rendered_html(body)
    assert "<a " not in html and "<img" not in html and "[Log in again](http" in html
    # GFM autolinks (http://, www., e-mail) and Streamlit directives need ':', '.', '@' or '[': all escaped
    assert "http://" not in body and "](" not in body and "![" not in body


def test_page_notices_cut_a_huge_link_value(_fresh_caches: None) -> None:
    from components.state import ECHO_CHARS, parse_query

    _, notices = parse_query({"rule": ["r" * 20_000], "top": ["9" * 4000], "model": ["m" * 20_000]}, [])
    assert len(notices) == 4 and all(len(n) < ECHO_CHARS + 120 for n in notices), notices  # + "no usable model"
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = ""  # nothing is computed: the notice is what is tested
    at.query_params["rule"] = "r" * 20_000
    at.run()
    assert not at.exception, messages(at.exception)
    assert "rule=" in messages(at.warning) and len(messages(at.warning)) < 400


# ----------------------------------------------------------------------------- share links past a safe length


def test_share_links_past_a_safe_length_are_refused_with_a_json_download(minilm, _fresh_caches: None) -> None:  # type: ignore[no-untyped-def]
    from components.state import MAX_LINK_CHARS, link_problem, share_url

    assert link_problem(share_url(None, {"a": "x" * 100})) is None
    assert "longer ones are refused" in (link_problem(share_url(None, {"a": "é" * MAX_LINK_CHARS})) or "")
    long_text = ("Ünïcödé wörds " * 2000)[:20_000]  # about 90 kB once percent-encoded
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = long_text
    at.query_params["b"] = "A short text."
    at.query_params["steps"] = "1"
    at.run()
    assert not at.exception, messages(at.exception)
    assert len(at.get("plotly_chart")) == 1  # the view itself works
    shown = messages(at.info)
    assert "more than a link can safely carry" in shown and "download it below" in shown
    assert not [c for c in at.code if "?a=" in str(c.value)]  # no link offered
    assert any(str(b.proto.label).startswith("Result of") for b in at.get("download_button"))
