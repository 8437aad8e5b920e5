"""GET /suggest (autocomplete) over HTTP on loopback, against the shared records."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import httpx

from nivl import Library, Settings
from nivl.web.app import create_app

from .servers import running


def _folded(text: str) -> str:
    bare = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in bare if not unicodedata.combining(c))


def _texts(http: Any, q: str) -> list[str]:
    response = http.get("/suggest", params={"q": q})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["q"] == q
    return [s["text"] for s in body["suggestions"]]


def test_apo_completes_to_apollo_keywords_with_their_record_counts(
    http: Any, shared_items: list[dict]
) -> None:
    body = http.get("/suggest", params={"q": "apo"}).json()
    suggestions = body["suggestions"]
    assert 1 <= len(suggestions) <= 10
    assert all(_folded(s["text"]).startswith("apo") for s in suggestions)
    by_text = {s["text"]: s["count"] for s in suggestions}
    # the mission keyword, counted as the records tagged with it (any case)
    tagged = sum(
        1
        for item in shared_items
        for k in item["data"][0].get("keywords", [])
        if _folded(k) == "apollo 11"
    )
    assert tagged > 0 and by_text["Apollo 11"] == tagged
    assert [s["text"] for s in suggestions][:2] == ["Apollo", "Apollo 11"]
    counts = [s["count"] for s in suggestions]
    assert all(isinstance(n, int) and n > 0 for n in counts)


def test_earlier_words_are_kept_and_the_last_one_completed(http: Any) -> None:
    texts = _texts(http, "apollo 1")
    assert "Apollo 11" in texts  # the whole q completes a keyword
    assert all(_folded(t).startswith("apollo 1") for t in texts)
    texts = _texts(http, "moon apo")
    assert texts and texts[0] == "moon apollo"
    assert all(t.startswith("moon ") for t in texts)


def test_accents_and_case_fold(http: Any) -> None:
    assert "Orion" in _texts(http, "Ōri")
    assert _texts(http, "APO")[:2] == ["Apollo", "Apollo 11"]


def test_stop_words_are_never_offered(http: Any) -> None:
    texts = _texts(http, "th")
    assert texts  # "thermal", "three", ...
    assert not {t.casefold() for t in texts} & {"the", "this", "that", "these", "they", "there"}


def test_a_long_pasted_q_is_answered(http: Any) -> None:
    texts = _texts(http, "moon " * 1900 + "apo")
    assert texts and texts[0] == "moon " * 1899 + "moon apollo"


def test_nothing_to_complete_is_an_empty_list(http: Any) -> None:
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "zqxjzqxj"}, {"q": "!!!"}):
        response = http.get("/suggest", params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["suggestions"] == [], params


def test_bad_input_is_a_400_with_a_reason(http: Any) -> None:
    for q in ("x" * 10_001, "apo\x00", "apo\nllo", "a\x1b[31m"):
        response = http.get("/suggest", params={"q": q})
        assert response.status_code == 400, (q, response.text)
        assert "'q'" in response.json()["reason"]


def test_documented_in_the_openapi_schema(http: Any) -> None:
    schema = http.get("/openapi.json").json()
    operation = schema["paths"]["/suggest"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["q"]
    assert "400" in operation["responses"]


def test_a_new_revision_brings_new_completions(tmp_path: Path, shared_items: list[dict]) -> None:
    """The vocabulary is kept per revision: an import seen by the server rebuilds it."""
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps(item) for item in shared_items[:30]))
    with Library(settings) as lib:
        lib.import_paths([first])
    novel = json.loads(json.dumps(shared_items[40]))
    novel["data"][0]["keywords"] = ["Zyzzyva Probe"]
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps(novel))
    with running(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/suggest", params={"q": "zyzz"}).json()["suggestions"] == []
        with Library(settings) as writer:
            writer.import_paths([second])
        found = client.get("/suggest", params={"q": "zyzz"}).json()["suggestions"]
        assert {"text": "Zyzzyva Probe", "count": 1} in found
