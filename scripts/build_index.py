#!/usr/bin/env python
"""Rebuild an index from a script: the same library call `clipsearch index build` makes.

Example usage:

    python scripts/build_index.py examples/clips.jsonl examples/page.txt --out index/example

A running `clipsearch serve` keeps answering from the previous version while this builds; the new version becomes
current in one atomic switch once it is complete and verified.
"""

from __future__ import annotations

import argparse
import sys

from clipsearch import build_index
from clipsearch.errors import ClipsearchError, CorpusError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="clip files (.jsonl, .json, .csv, .txt pages)")
    parser.add_argument("--out", required=True, help="index directory")
    parser.add_argument("--model", default=None, help="model name or path (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: OUT/cache)")
    args = parser.parse_args(argv)
    try:
        result = build_index(args.sources, args.out, model=args.model, cache_dir=args.cache_dir)
    except ClipsearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CorpusError) else 1
    print(f"built {args.out} version {result.index.version}: {result.clips} clips, {result.vectors} vectors, "
          f"{result.clips_per_second:.1f} clips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
