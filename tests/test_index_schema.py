"""Index schema 5: no text stored in tantivy, no positions on the vocabulary field.

Snippets are cut from the store's items (``search_index.highlight_document``), so the
index keeps no doc store of titles and descriptions (half its bytes, written and
compressed at every import). A home indexed under schema 4 is rebuilt on open and then
answers as before: same hits, same highlights, same typo suggestion, quoted phrases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import tantivy

from nivl import Library, Settings, matching
from nivl.query import QueryPlan, parse_request, plan_query
from nivl.records import parse_item
from nivl.search_index import (
    ANALYZER,
    GROUP_FIELDS,
    SCHEMA_VERSION,
    SHARED_FIELDS,
    TEXT_FIELDS,
    VOCABULARY_ANALYZER,
    english_analyzer,
    record_document,
    vocabulary_analyzer,
)

from .test_search_counts import _item, _write

DAY = "1999-05-05T00:00:00Z"
#: A transcript whose words of interest lie far past the first 240 characters.
LONG = "Filler words about nothing in particular. " * 30 + "Then the quasar flare rose."
ITEMS = [
    _item("qa0001", "Quasar mosaic tile", "A tile of the deep quasar mosaic.", DAY),
    # the same event, not a tie: the order of equal scores is the index build's
    _item(
        "qa0002", "Quasar mosaic tile", "Another tile of the deep quasar mosaic, in red light.", DAY
    ),
    _item("qz0001", "Survey plate", LONG, "1971-02-02"),
    _item("pl0001", "Pulsar timing", "Radio pulses from a spinning star.", "1980-03-03"),
]


def _schema_4() -> tantivy.Schema:
    """The schema before this one, as it was: title, description and nasa_id stored,
    positions on the vocabulary field."""
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("rid", indexed=True, fast=True)
    builder.add_text_field("nasa_id", tokenizer_name="raw", stored=True)
    builder.add_text_field("ids", tokenizer_name=VOCABULARY_ANALYZER)
    for name in TEXT_FIELDS:
        builder.add_text_field(
            name, tokenizer_name=ANALYZER, stored=name in ("title", "description")
        )
    builder.add_text_field(matching.VOCABULARY_FIELD, tokenizer_name=VOCABULARY_ANALYZER)
    builder.add_text_field("center", tokenizer_name="raw", fast=True)
    builder.add_text_field("media_type", tokenizer_name="raw", fast=True)
    builder.add_text_field("album", tokenizer_name="raw")
    builder.add_text_field("keyword_exact", tokenizer_name="raw", fast=True)
    builder.add_text_field("photographer_exact", tokenizer_name="raw", fast=True)
    builder.add_integer_field("year", indexed=True, fast=True)
    builder.add_integer_field("ts", indexed=True, fast=True)
    for name in GROUP_FIELDS:
        builder.add_unsigned_field(name, indexed=True, fast=True)
        builder.add_unsigned_field(SHARED_FIELDS[name], fast=True)
    return builder.build()


def _answers(library: Library) -> list[Any]:
    """What a person sees for a few searches: hits in order, highlights, suggestion."""
    out: list[Any] = []
    for params in (
        {"q": "quasar", "highlight": "true", "collapse": "none"},
        {"q": "quasar", "highlight": "true", "collapse": "event"},
        {"q": '"quasar flare"', "highlight": "true"},
        {"description": '"deep quasar"'},
        {"q": "quasr"},
    ):
        result = library.search(parse_request(params))
        hits = [
            (orjson.loads(hit.raw_json)["data"][0]["nasa_id"], hit.highlight) for hit in result.hits
        ]
        out.append((params, result.total_hits, hits, result.suggestion))
    return out


EXPECTED_HIGHLIGHT = {
    "title": "<b>Quasar</b> mosaic tile",
    "description": "A tile of the deep <b>quasar</b> mosaic",
}


def test_highlights_are_cut_from_the_stored_item_and_the_index_keeps_no_text(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", ITEMS)])
        answers = _answers(library)
        snapshot = library.index.snapshot()
        hits = snapshot.search(snapshot.compile(_plan("quasar")), limit=9)
        assert hits.total == 3
        for address in hits.addresses:  # nothing stored: a document reads back empty
            assert library.index.searcher.doc(address).to_dict() == {}
    by_id = dict(answers[0][2])
    assert by_id["qa0001"] == EXPECTED_HIGHLIGHT
    deep = by_id["qz0001"]["description"]  # the match, 1,260 characters in
    assert deep.endswith("<b>quasar</b> flare rose") and len(deep) < 400
    assert "title" not in by_id["qz0001"]  # "Survey plate" has no match to mark
    phrase = answers[2]
    assert phrase[1] == 1 and phrase[2][0][0] == "qz0001"
    assert "<b>quasar</b> <b>flare</b>" in phrase[2][0][1]["description"]
    assert answers[3][1] == 2  # the phrase inside the short descriptions
    assert answers[4][3] == "quasar"  # the typo's suggestion, from the vocabulary field


def _plan(q: str) -> QueryPlan:
    return plan_query(parse_request({"q": q}))


def test_an_index_of_schema_4_is_rebuilt_and_answers_the_same(tmp_path: Path) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", ITEMS)])
        expected = _answers(library)
        rows = [(row.id, row.raw) for row in library.store.iter_rows()]
    # the same records as a schema-4 home held them (text stored in the index)
    path = settings.index_path
    for file in path.iterdir():
        file.unlink()
    old = tantivy.Index(_schema_4(), path=str(path))
    old.register_tokenizer(ANALYZER, english_analyzer())
    old.register_tokenizer(VOCABULARY_ANALYZER, vocabulary_analyzer())
    writer = old.writer(heap_size=15_000_000, num_threads=1)
    for row_id, raw in rows:
        writer.add_document(record_document(row_id, parse_item(orjson.loads(raw), raw=raw)))
    writer.commit()
    writer.wait_merging_threads()
    del writer, old
    (path / "nivl-schema").write_text("4")
    with Library(settings) as library:
        assert (path / "nivl-schema").read_text() == SCHEMA_VERSION
        assert library.index.num_docs() == len(ITEMS)
        assert _answers(library) == expected
        snapshot = library.index.snapshot()
        hits = snapshot.search(snapshot.compile(_plan("quasar")), limit=9)
        assert [library.index.searcher.doc(a).to_dict() for a in hits.addresses] == [{}] * 3
    assert dict(expected[0][2])["qa0001"] == EXPECTED_HIGHLIGHT
