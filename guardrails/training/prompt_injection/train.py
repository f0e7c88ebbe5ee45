"""Trains Sluice's prompt-injection model: logistic regression over hashed
word 1-2-grams and character 3-5-grams, exported for the Rust detector
(guardrails/src/prompt_injection.rs), which hashes features identically.

Data: ../shared/data/prompt-injection/ (train files only for fitting; the
validation files are reported on). Reproducible: fixed seed, deterministic
solver. Run from the repo root:

    python3 -m venv /tmp/pi-venv && /tmp/pi-venv/bin/pip install numpy==2.* scipy scikit-learn
    /tmp/pi-venv/bin/python guardrails/training/prompt_injection/train.py
"""
import csv
import json
import pathlib
import struct
import sys

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

ROOT = pathlib.Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "prompt-injection"
ASSET = ROOT / "guardrails" / "assets" / "prompt_injection.bin"
BITS = 16
C = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0


def fnv1a(data: bytes, seed: int) -> int:
    h = 0x811C9DC5 ^ seed
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def finish(h: int, n: int) -> int:
    """Character n-grams share their FNV prefix; the length is mixed in last."""
    x = ((h ^ ((n * 0x9E3779B9) & 0xFFFFFFFF)) * 0x85EBCA6B) & 0xFFFFFFFF
    return x ^ (x >> 13)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def features(text: str):
    """Must match prompt_injection.rs exactly."""
    t = normalise(text)
    out = {}
    mask = (1 << BITS) - 1

    def add(h):
        i = h & mask
        out[i] = out.get(i, 0.0) + 1.0

    words = t.split(" ") if t else []
    for i, w in enumerate(words):
        add(fnv1a(w.encode(), 1))
        if i + 1 < len(words):
            add(fnv1a((w + " " + words[i + 1]).encode(), 2))
    b = (" " + t + " ").encode()
    for i in range(len(b) - 2):
        h = 0x811C9DC5
        for k in range(4):
            if i + k >= len(b):
                break
            h = ((h ^ b[i + k]) * 0x01000193) & 0xFFFFFFFF
            if k >= 2:
                add(finish(h, k + 1))
    # Log-scaled counts, L2-normalised: long prompts are not scored higher
    # just for being long.
    norm = 0.0
    for k in out:
        out[k] = 1.0 + np.log(out[k])
        norm += out[k] ** 2
    norm = norm ** 0.5 or 1.0
    return {k: v / norm for k, v in out.items()}


def load(name):
    rows = list(csv.DictReader(open(DATA / name, newline="", encoding="utf-8")))
    return [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])


def matrix(texts):
    data, idx, ptr = [], [], [0]
    for t in texts:
        f = features(t)
        idx.extend(f.keys())
        data.extend(f.values())
        ptr.append(len(idx))
    return csr_matrix((data, idx, ptr), shape=(len(texts), 1 << BITS), dtype=np.float64)


def report(name, y, p, threshold):
    pred = p >= threshold
    tp = int(((pred == 1) & (y == 1)).sum()); fp = int(((pred == 1) & (y == 0)).sum()); fn = int(((pred == 0) & (y == 1)).sum())
    prec = tp / max(tp + fp, 1); rec = tp / max(tp + fn, 1); f1 = 2 * prec * rec / max(prec + rec, 1e-9)
    print(f"{name:<28} precision {prec:.4f} recall {rec:.4f} F1 {f1:.4f}")
    return f1


xs, ys = [], []
for f in ("s-labs-train.csv", "neuralchemy-train.csv"):
    t, y = load(f)
    xs += t
    ys.append(y)
X = matrix(xs)
y = np.concatenate(ys)
model = LogisticRegression(C=C, solver="liblinear", max_iter=2000, random_state=0)
model.fit(X, y)
threshold = 0.5
for f in ("s-labs-train.csv", "neuralchemy-train.csv", "s-labs-validation.csv", "neuralchemy-validation.csv"):
    t, yv = load(f)
    report(f, yv, model.predict_proba(matrix(t))[:, 1], threshold)

w = model.coef_[0].astype(np.float32)
header = json.dumps({"bits": BITS, "bias": float(model.intercept_[0]), "threshold": threshold, "C": C}).encode()
with open(ASSET, "wb") as out:
    out.write(struct.pack("<I", len(header)))
    out.write(header)
    out.write(w.tobytes())
print(f"wrote {ASSET} ({ASSET.stat().st_size} bytes)")
