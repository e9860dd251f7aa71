"""List the corpora minimac knows: the embedded default (always offline) and the registry of real corpora.

    python examples/list_corpora.py                 # registry, plus the sizes of the embedded default
    MINIMAC_DATA=../shared/data python examples/list_corpora.py --sizes   # also load every split and size it

With --sizes each registry corpus is read from the offline mirror ($MINIMAC_DATA) or downloaded into the cache
($MINIMAC_CACHE, default ~/.cache/minimac) once, checking every file's sha256.
"""
import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so it runs from a checkout without pip install


def sizes(name: str, splits: tuple[str, ...], domain: str | None = None) -> list[str]:
    """'docs / Mchars' per split, '-' for a split the corpus does not have."""
    from minimac.data import SPLITS, load_corpus

    cells = []
    for split in SPLITS:
        if split not in splits:
            cells.append("-")
            continue
        docs = load_corpus(name, split, domain=domain)
        cells.append(f"{len(docs)} / {sum(map(len, docs)) / 1e6:.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="load every registry corpus and show split sizes")
    args = parser.parse_args()
    from minimac.data import CORPORA, DEFAULT_DOMAINS, DOMAIN_ORDER, SPLITS

    splits = Table(title="splits (documents / million characters)")
    about = Table(title="content and licences")
    for column in ("name", "role", "files", *SPLITS):
        splits.add_column(column, no_wrap=True)
    for column in ("name", "content", "licence", "source"):
        about.add_column(column, no_wrap=column == "name")
    for domain in DEFAULT_DOMAINS:
        splits.add_row(f"default/{domain}", "embedded", "-", *sizes("default", SPLITS, domain))
    about.add_row("default", "from the running Python: pydoc_data topics (docs) and stdlib source (code)", "PSF-2.0",
                  "this interpreter")
    for name, corpus in CORPORA.items():
        role = f"{corpus.role} D{DOMAIN_ORDER.index(name)}" if name in DOMAIN_ORDER[1:] else corpus.role
        cells = sizes(name, corpus.splits) if args.sizes else ["?" if s in corpus.splits else "-" for s in SPLITS]
        splits.add_row(name, role, str(len(corpus.files)), *cells)
        about.add_row(name, corpus.description, corpus.licence, corpus.source)
    console = Console()
    console.print(splits)
    console.print(about)
    console.print("continual-learning order: " + " -> ".join(DOMAIN_ORDER))


if __name__ == "__main__":
    main()
