"""scripts/build_model.py's fit: a token table whose mean pooling reproduces the teacher."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sp = pytest.importorskip("scipy.sparse")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_model.py"


def build_model():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fit_reproduces_the_teachers_vectors_and_keeps_unseen_tokens() -> None:
    rng = np.random.default_rng(7)
    vocabulary, dims = 12, 3
    truth = rng.normal(size=(vocabulary, dims))
    # 40 texts over tokens 0-8 only: tokens 9-11 never appear in the corpus
    texts = [rng.choice(9, size=rng.integers(2, 6)) for _ in range(40)]
    rows = []
    for tokens in texts:
        row = np.zeros(vocabulary)
        for token in tokens:
            row[token] += 1 / len(tokens)
        rows.append(row)
    x = sp.csr_matrix(np.array(rows))
    teacher = x @ truth  # what mean pooling over the true table gives
    prior = np.zeros((vocabulary, dims)) + 5.0
    table = build_model().ridge(x, teacher, prior, lam=1e-9)
    assert np.allclose(x @ table, teacher, atol=1e-4)
    assert np.allclose(table[:9], truth[:9], atol=1e-3)
    assert (table[9:] == 5.0).all()  # no evidence: the distilled rows stay
    pulled = build_model().ridge(x, teacher, prior, lam=10.0)
    assert np.abs(pulled[:9] - 5.0).mean() < np.abs(table[:9] - 5.0).mean()
