"""The summary `process_document` writes, computed chunk by chunk: a worker holds one chunk of a document and a
bounded table of words, never the whole object, so many large documents at once stay within the worker's memory.
The same bytes always give the same summary, however they are cut into chunks."""

from __future__ import annotations

import codecs
import hashlib
import mimetypes
import re
from collections import Counter
from typing import Any

TOP_WORDS = 10
# The most distinct words counted; a word first met past it is still counted in `words`, not in the table.
MAX_DISTINCT_WORDS = 100_000
# A word is carried from one chunk to the next up to this length.
MAX_WORD_CHARS = 64 * 1024
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
# What str.splitlines() splits on, "\r\n" being one break.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BREAK_CHARS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


class DocumentSummary:
    """Feed the document's bytes in order (`feed`), then read `result(key)`."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._newline_bytes = 0
        self._last_byte = b""
        self._decoder: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
        self._characters = 0
        self._breaks = 0
        self._last_char = ""
        self._word_tail = ""  # a word that may go on in the next chunk
        self._words = 0
        self._counts: Counter[str] = Counter()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha256.update(chunk)
        self._size += len(chunk)
        self._newline_bytes += chunk.count(b"\n")
        self._last_byte = chunk[-1:]
        self._decode(chunk, final=False)

    def result(self, key: str) -> dict[str, Any]:
        self._decode(b"", final=True)
        summary: dict[str, Any] = {"size_bytes": self._size, "sha256": self._sha256.hexdigest()}
        guessed, _ = mimetypes.guess_type(key, strict=False)
        if self._decoder is None:  # not UTF-8 text
            summary.update(
                encoding=None,
                content_type=guessed or "application/octet-stream",
                lines=self._newline_bytes + (1 if self._size and self._last_byte != b"\n" else 0),
                words=None,
                characters=None,
                top_words=[],
            )
            return summary
        self._count_words(self._word_tail, final=True)
        self._word_tail = ""
        top = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_WORDS]
        summary.update(
            encoding="utf-8",
            content_type=guessed or "text/plain",
            lines=self._breaks + (1 if self._last_char and self._last_char not in _BREAK_CHARS else 0),
            words=self._words,
            characters=self._characters,
            distinct_words=len(self._counts),
            top_words=[{"word": word, "count": count} for word, count in top],
        )
        if len(self._counts) >= MAX_DISTINCT_WORDS:
            summary["distinct_words_capped"] = True  # `distinct_words` and `top_words` cover the first ones met
        return summary

    def _decode(self, chunk: bytes, *, final: bool) -> None:
        if self._decoder is None:
            return
        try:
            text = self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            self._decoder = None  # binary: only the byte figures are kept
            self._counts.clear()
            return
        if not text:
            return
        self._breaks += len(_LINE_BREAK.findall(text))
        if self._last_char == "\r" and text[0] == "\n":
            self._breaks -= 1  # "\r\n" cut between two chunks is one break
        self._last_char = text[-1]
        self._characters += len(text)
        self._count_words(self._word_tail + text, final=False)

    def _count_words(self, text: str, *, final: bool) -> None:
        matches = list(_WORD.finditer(text))
        self._word_tail = ""
        if matches and not final and matches[-1].end() >= len(text) - 1:
            # The last word touches the end (or only a connector follows it): the next chunk may go on with it,
            # unless it is already absurdly long (then it counts as one word here, and what follows as another).
            tail = text[matches[-1].start() :]
            if len(tail) <= MAX_WORD_CHARS:
                self._word_tail = tail
                matches.pop()
        for match in matches:
            self._words += 1
            word = match.group().lower()
            if word in self._counts or len(self._counts) < MAX_DISTINCT_WORDS:
                self._counts[word] += 1


def summarize(data: bytes, *, key: str) -> dict[str, Any]:
    """The summary of a document held whole (tests, small inputs)."""
    summary = DocumentSummary()
    summary.feed(data)
    return summary.result(key)
