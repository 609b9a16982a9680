"""clipsearch: semantic question answering over video clip transcripts."""

__version__ = "0.1.0"

from clipsearch.clips import Clip  # noqa: E402
from clipsearch.index import ClipIndex  # noqa: E402
from clipsearch.search import Answer, Hit, Searcher  # noqa: E402
from clipsearch.build import build_index  # noqa: E402

__all__ = ["Answer", "Clip", "ClipIndex", "Hit", "Searcher", "__version__", "build_index"]
