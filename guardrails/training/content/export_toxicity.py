"""Exports the toxicity model that the MIT-licensed PyPI package
`alt-profanity-check` 1.9.1 ships (a TF-IDF vectorizer and a sigmoid-
calibrated ensemble of 5 linear SVMs, trained by its authors on ~200k
human-labelled comments) into guardrails/assets/content/toxicity.bin for
the Rust classifier (guardrails/src/content.rs).

Run from the repo root:
    python3 -m venv /tmp/content-venv
    /tmp/content-venv/bin/pip install scikit-learn==1.9.1 joblib==1.6.0 alt-profanity-check==1.9.1
    /tmp/content-venv/bin/python guardrails/training/content/export_toxicity.py
"""
import json
import pathlib
import struct

import joblib
import profanity_check

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "guardrails" / "assets" / "content" / "toxicity.bin"
DATA = pathlib.Path(profanity_check.__file__).parent / "data"

vec = joblib.load(DATA / "vectorizer.joblib")
model = joblib.load(DATA / "model.joblib")
assert vec.token_pattern == r"(?u)\b\w\w+\b" and vec.lowercase and vec.norm == "l2" and not vec.sublinear_tf
members = model.calibrated_classifiers_
header = {
    "members": len(members),
    "intercepts": [float(c.estimator.intercept_[0]) for c in members],
    "a": [float(c.calibrators[0].a_) for c in members],
    "b": [float(c.calibrators[0].b_) for c in members],
}
vocab = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
OUT.parent.mkdir(parents=True, exist_ok=True)
with open(OUT, "wb") as f:
    h = json.dumps(header).encode()
    f.write(struct.pack("<I", len(h)))
    f.write(h)
    f.write(struct.pack("<I", len(vocab)))
    for token, i in vocab:
        t = token.encode()
        f.write(struct.pack("<B", len(t)))
        f.write(t)
        f.write(struct.pack("<f", vec.idf_[i]))
        for c in members:
            f.write(struct.pack("<f", c.estimator.coef_[0][i]))

# Reference scores for the Rust port's test (same inputs, Python's output).
samples = ["you are a stupid idiot", "have a lovely day", "this is fucking great", "I will find you and hurt you", ""]
print(json.dumps({s: float(model.predict_proba(vec.transform([s]))[0][1]) for s in samples}))
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(vocab)} tokens)")
