"""Semantic and hybrid search: pure fusion, modes, and what happens without the extra.

Tests that need the [semantic] extra live in test_semantic_index.py; these run everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from nivl import Library, Settings, parse_request
from nivl.errors import InvalidParameter
from nivl.hybrid import blend, filter_plan, has_filters, minmax, rrf
from nivl.web.app import create_app

from .servers import running


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(rrf([(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)], k=60))
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1] == pytest.approx(1 / 61) and fused[3] == pytest.approx(1 / 62)
    assert [row for row, _ in rrf([(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)])] == [2, 1, 3]


def test_blend_scales_each_list_and_weights_dense() -> None:
    lexical = [(1, 12.0), (2, 8.0), (3, 4.0)]
    dense = [(3, 0.9), (4, 0.5)]
    fused = dict(blend(lexical, dense, weight=0.7))
    assert fused[3] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert fused[1] == pytest.approx(0.3)
    assert fused[4] == pytest.approx(0.0)
    assert fused[2] == pytest.approx(0.3 * 0.5)
    assert blend([], []) == []
    assert minmax([(7, 3.0)]) == {7: 1.0}


def test_mode_is_validated_defaults_to_lexical_and_round_trips() -> None:
    assert parse_request({"q": "moon"}).mode == "lexical"
    request = parse_request({"q": "moon", "mode": "hybrid"})
    assert request.mode == "hybrid" and request.params()["mode"] == "hybrid"
    assert "mode" not in parse_request({"q": "moon"}).params()
    assert parse_request({"q": "moon"}, mode="semantic").mode == "semantic"
    with pytest.raises(InvalidParameter, match="'mode'"):
        parse_request({"q": "moon", "mode": "dense"})


def test_filters_exclude_q_but_keep_everything_else() -> None:
    assert not has_filters(filter_plan(parse_request({"q": "rocket launch"})))
    plan = filter_plan(parse_request({"q": "rocket", "media_type": "video", "title": "antares"}))
    assert has_filters(plan) and plan.media_types == ("video",) and len(plan.text) == 1


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an installation without nivl[semantic]: its modules cannot be imported."""
    monkeypatch.setitem(sys.modules, "usearch", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)


@pytest.fixture
def api_without_extra(without_extra: None, loaded: Library) -> Iterator[httpx.Client]:
    with (
        running(create_app(loaded.settings, library=loaded)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def supernovae(items: list[dict]) -> int:
    """How many of these items are about supernovae (judged by their own words)."""
    return sum(
        "supernova" in (i["data"][0]["title"] + i["data"][0].get("description", "")).lower()
        for i in items
    )


def test_without_the_extra_the_api_ranks_by_meaning_with_the_built_in_model(
    api_without_extra: httpx.Client, loaded: Library
) -> None:
    for mode in ("semantic", "hybrid"):
        response = api_without_extra.get(
            "/search", params={"q": "exploding stars", "mode": mode, "page_size": "10"}
        )
        assert response.status_code == 200, response.text
        assert supernovae(response.json()["collection"]["items"]) >= 6, mode
    response = api_without_extra.get("/similar/0002272", params={"page_size": "5"})
    assert response.status_code == 200
    titles = [i["data"][0]["title"] for i in response.json()["collection"]["items"]]
    assert "History of Chandra X-Ray Observatory" not in titles  # never itself
    assert sum("chandra" in t.lower() or "x-ray" in t.lower() for t in titles) >= 2
    lexical = api_without_extra.get("/search", params={"q": "mars"})
    assert lexical.status_code == 200 and lexical.json()["collection"]["items"]
    health = api_without_extra.get("/healthz").json()
    assert health["semantic"]["available"] is False
    assert health["semantic"]["model"] == "minilm-fitted-256-v3"
    assert health["semantic"]["builtin"]["embedded"] == loaded.count()  # made on import


def test_without_the_extra_hybrid_is_the_default_and_embed_exits_2(
    without_extra: None, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from nivl.cli import main
    from nivl.embeddings import default_mode

    assert default_mode() == "hybrid"
    with pytest.raises(SystemExit) as exit_:
        main(["embed", "--home", str(settings.home)])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "pip install '.[semantic]'" in message and "nivl[semantic]" not in message


def test_without_the_extra_the_library_uses_the_built_in_model(
    without_extra: None, loaded: Library
) -> None:
    assert loaded.semantic_model() == "minilm-fitted-256-v3"
    found = loaded.search(parse_request({"q": "exploding stars", "mode": "hybrid"}))
    assert found.total_hits > 0
    assert loaded.search(parse_request({"q": "stars"})).total_hits > 0
