"""Abstracts made readable: no raw tags, entities decoded, links and list items kept, nothing that pings."""

from __future__ import annotations

import pytest

from bot.sources.markup import neutralise_mentions, readable


def test_html_paragraphs_lists_links_and_entities() -> None:
    html = (
        "<p>FOSDEM welcome &amp; opening&nbsp;talk.</p>"
        "<ul><li>one <b>bold</b></li><li>two <a href='https://x.org/a'>docs</a></li></ul>"
        '<p>Mail <a href="mailto:a@b.org">a@b.org</a>, see <a href="https://e.org">https://e.org</a> &mdash; &lt;div&gt; &#8212; &eacute;</p>'
    )
    assert readable(html) == ("FOSDEM welcome & opening talk.\n\n• one bold\n• two docs (https://x.org/a)\n\nMail a@b.org, see https://e.org — <div> — é")


def test_html_ordered_and_nested_lists_and_line_breaks() -> None:
    assert readable("<ol><li>a<ol><li>b</li></ol></li><li>c</li></ol>") == "1. a\n  1. b\n2. c"
    assert readable("<p>first<br>second<br/>third</p>") == "first\nsecond\nthird"
    assert readable("<p>  lots\n   of\n\n space  </p><p>next</p>") == "lots of space\n\nnext"


def test_html_that_must_not_reach_a_reader() -> None:
    text = readable(
        "<p>x<script>alert(1)</script>y<style>p{}</style> <img src='cat.png' alt='a cat'> <a href='javascript:alert(1)'>click</a></p><!-- hidden -->"
    )
    assert text == "xy a cat click"


def test_angle_brackets_that_are_not_html_stay() -> None:
    assert readable("Talk about List<String> and Map<K, V> where a < b") == "Talk about List<String> and Map<K, V> where a < b"
    assert readable("<TL/DR.Extended> Die DSGVO") == "<TL/DR.Extended> Die DSGVO"


def test_markdown_becomes_plain_text() -> None:
    markdown = (
        "# Title\n\nSome **bold**, *italic*, _em_ and ~~gone~~ text; snake_case_name and 2*3*4 stay.\n\n"
        '- one\n* two [the docs](https://e.org/docs "Docs") and <https://auto.org>\n\n'
        "> quoted\n\n---\n\n![a logo](logo.png) \\*literal\\*"
    )
    assert readable(markdown) == (
        "Title\n\nSome bold, italic, em and gone text; snake_case_name and 2*3*4 stay.\n\n"
        "• one\n• two the docs (https://e.org/docs) and https://auto.org\n\nquoted\n\na logo *literal*"
    )


def test_markdown_code_is_literal() -> None:
    text = readable("Use `List<div>` or\n\n```python\nx = a**b**c  # <b>\n```\nthen **go**")
    assert text == "Use List<div> or\n\nx = a**b**c  # <b>\nthen go"


def test_pretalx_text_keeps_its_lines_and_indented_bullets() -> None:
    text = "Highlights:\r\n1) Explore\r\n  - Dive into repositories\r\n  - Understand  the dashboard\r\n\r\n\r\n\r\nQuestions | Email us"
    assert readable(text) == "Highlights:\n1) Explore\n  • Dive into repositories\n  • Understand the dashboard\n\nQuestions | Email us"


@pytest.mark.parametrize(
    "text",
    ["Hi @everyone!", "@here look", "ping <@123>", "ping <@!123>", "role <@&456>", "channel <#789>", "<p>@everyone <b>now</b></p>", "**@here**"],
)
def test_mentions_are_neutralised(text: str) -> None:
    out = readable(text)
    for live in ("@everyone", "@here", "<@123>", "<@!123>", "<@&456>", "<#789>"):
        assert live not in out
    assert "\u200b" in out  # defused by a zero-width space, so the words still read the same


def test_neutralised_text_still_reads_the_same() -> None:
    assert neutralise_mentions("mail info@example.org @everyone <@1>") == "mail info@example.org @\u200beveryone <\u200b@1>"


def test_empty_and_control_characters() -> None:
    assert readable("") == ""
    assert readable("bell\x07 and nul\x00 gone") == "bell and nul gone"


def test_text_with_nothing_to_read_is_kept_as_it_is_and_all_else_read_as_before():
    """Plain one-line abstracts skip the rules (most of a big conference's); the result never differs."""
    import itertools
    import json
    from pathlib import Path

    from bot.sources.markup import _readable

    samples = Path(__file__).parent / "data" / "samples"
    texts = [
        event.get(field) or ""
        for name in ("33c3-2016.json", "good-2025.json")
        for day in json.loads((samples / name).read_text(encoding="utf-8"))["schedule"]["conference"]["days"]
        for events in day["rooms"].values()
        for event in events
        for field in ("abstract", "description", "subtitle")
    ]
    marks = [
        "",
        " ",
        "  ",
        "\t",
        "\n",
        "\n\n\n",
        "*",
        "_",
        "`",
        "~~",
        "<b>",
        "&amp;",
        "@here",
        "[a](http://x.org)",
        "# ",
        "- ",
        "> ",
        "|",
        "\\*",
        "\x07",
        "\u00a0",
    ]
    texts += ["plain words.", *(a + "plain words" + b for a, b in itertools.product(marks, repeat=2))]
    assert len(texts) > 400
    for text in texts:
        assert readable(text) == _readable(text), text


def test_every_ascii_character_inside_a_plain_line_is_read_as_the_rules_read_it():
    """The quick check of plain ASCII (one pass over its bytes) lets through only what no rule changes."""
    from bot.sources.markup import _readable

    for code in range(128):
        for text in (f"plain {chr(code)} words", f"plain{chr(code)}words", f"plain words{chr(code)}."):
            assert readable(text) == _readable(text), repr(text)
