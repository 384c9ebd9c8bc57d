"""The streamed document summary: the same bytes give the same summary however they are cut into chunks, the
figures are those of the text held whole, and the word table is bounded."""

from __future__ import annotations

import re

import pytest

from runtime.job_types import document_summary
from runtime.job_types.document_summary import DocumentSummary, summarize

TEXTS = [
    b"",
    b"one line without a break",
    b"The quick brown fox.\r\nThe lazy dog's bone - the fox\xe2\x80\x99s too\r\n\r\nend",
    "caf\u00e9 na\u00efve \u00e9l\u00e8ve \u2028 \u03bf\u03b4\u03bf\u03a3 \u0394\u03a3 \U0001f600 emoji\n".encode(),
    "dangling-\nhyphen words-and-more it's rock'n'roll \x0bvt\x0cff\x1cfs\x85 nel\r".encode(),
    b"binary \xff\xfe\x00 data\nwith\nlines",
    b"truncated utf-8 at the end \xe2\x80",
]


def chunked(data: bytes, size: int, key: str = "doc.txt") -> dict[str, object]:
    summary = DocumentSummary()
    for start in range(0, len(data), size):
        summary.feed(data[start : start + size])
    return summary.result(key)


@pytest.mark.parametrize("data", TEXTS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
def test_any_chunking_gives_the_summary_of_the_whole(data: bytes, size: int) -> None:
    assert chunked(data, size) == summarize(data, key="doc.txt")


@pytest.mark.parametrize("data", [text for text in TEXTS if not text.startswith((b"binary", b"truncated"))])
def test_the_figures_are_those_of_the_text_held_whole(data: bytes) -> None:
    text = data.decode("utf-8")
    words = re.findall(r"[^\W_]+(?:['\u2019-][^\W_]+)*", text)
    summary = chunked(data, 3)
    assert summary["lines"] == len(text.splitlines())
    assert summary["characters"] == len(text)
    assert summary["words"] == len(words)
    assert summary["distinct_words"] == len({word.lower() for word in words})
    assert summary["encoding"] == "utf-8" and summary["size_bytes"] == len(data)


def test_bytes_that_are_not_utf8_keep_only_the_byte_figures() -> None:
    summary = chunked(b"binary \xff\xfe\x00 data\nwith\nlines", 4, key="blob.bin")
    assert summary["encoding"] is None and summary["words"] is None and summary["top_words"] == []
    assert summary["lines"] == 3 and summary["content_type"] == "application/octet-stream"


def test_the_word_table_is_bounded_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_summary, "MAX_DISTINCT_WORDS", 3)
    summary = chunked(b"a b c d e a a b f", 2)
    assert summary["words"] == 9  # every word is counted
    assert summary["distinct_words"] == 3 and summary["distinct_words_capped"] is True
    assert summary["top_words"] == [{"word": "a", "count": 3}, {"word": "b", "count": 2}, {"word": "c", "count": 1}]
