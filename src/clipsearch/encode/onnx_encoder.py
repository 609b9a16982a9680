"""The query encoder on ONNX Runtime: the index's sentence-transformers model exported with ``torch.onnx``,
verified against torch, and kept in the index's cache directory so no rebuild exports it again.

The export runs the whole sentence-transformers pipeline (transformer, pooling and whatever other modules the
model's ``modules.json`` lists) and L2-normalises its output, so the ONNX graph gives the vectors
``Encoder.encode`` gives. An export whose vectors differ from torch's on a probe set (cosine below
``MIN_COSINE``) is refused: the refusal is recorded next to where the model would be, logged, and queries stay on
torch. Issue 7 has the measurements behind the defaults.

Layout (``CACHE`` is the index's cache directory, ``INDEX/cache`` by default)::

    CACHE/onnx/<fingerprint 16 hex>-<precision>-v<EXPORT_FORMAT>.onnx   the verified graph
    CACHE/onnx/<fingerprint 16 hex>-<precision>-v<EXPORT_FORMAT>.json   how it was made and verified
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from clipsearch.encode.models import ModelRef
from clipsearch.encode.torch_encoder import Encoder

log = logging.getLogger("clipsearch.onnx")

#: 2: verified with the ``tokenizers``-based tokenizer (:func:`tokenizer_of`).
EXPORT_FORMAT = 2
PRECISIONS = ("fp32", "int8")
BACKENDS = ("onnx", "torch")
#: Least cosine between an exported model's vectors and torch's, over the probe set, for it to be used. Dynamic
#: int8 cannot reach 0.999 on MiniLM (measured 0.98 on AVX2, issue 7), so it is held to what it can be.
MIN_COSINE = {"fp32": 0.999, "int8": 0.98}
#: How each precision is made; a cached record of another recipe is made again. int8: dynamic quantisation with
#: unsigned per-channel weights. On an AVX-512 VNNI machine it reached a least cosine of 0.968 on PROBES;
#: quantising only the MatMul weights, signed, reached 0.989 over 300 TutorialVQA questions but 0.960 on PROBES
#: (whose long and odd texts are the hard part), so it was not kept (issue 7).
RECIPES = {"fp32": "torch.onnx", "int8": "torch.onnx + quantize_dynamic QUInt8 per-channel"}
#: Texts the export is checked on: short and long, questions and answers, odd characters, one over the model's
#: maximum length (truncation must match too).
PROBES = [
    "how do I fix a flat tyre?",
    "save a design in Photoshop format or PSD",
    "What is the difference between a layer mask and a clipping mask?",
    "ok",
    "Choose File, Save As. In the Save As dialog box, change the name and choose Photoshop from the Format menu.",
    "my chain squeaks, what should I put on it",
    "Wie entferne ich den Hintergrund eines Bildes?",
    "¿Cómo recorto una imagen?",
    "100% of the RGB values → CMYK, 3.5 mm, $20, #hashtag, @mention, C++",
    "   leading and trailing spaces   ",
    "UPPER CASE QUESTION ABOUT BRUSHES",
    "emoji 🚲🔧 and symbols ©®",
    " ".join(["the long answer keeps going about colour grading, exposure and white balance"] * 30),
]
# Exports made by this process, by (fingerprint, precision): a second index of the same model links the files.
_EXPORTED: dict[tuple[str, str], tuple[Path, Path]] = {}


def onnx_paths(cache_dir: Path, model_fingerprint: str, precision: str) -> tuple[Path, Path]:
    """(graph, record) paths of a model's export at ``precision`` in ``cache_dir``."""
    stem = f"{model_fingerprint[:16]}-{precision}-v{EXPORT_FORMAT}"
    return Path(cache_dir) / "onnx" / f"{stem}.onnx", Path(cache_dir) / "onnx" / f"{stem}.json"


class OnnxEncoder:
    """A verified ONNX export of a sentence-transformers model; ``encode`` as :class:`Encoder`'s.

    Example usage::

        encoder = load_query_encoder(resolve_model(None), Path("index/example/cache"))
        encoder.encode(["how do I fix a flat tyre?"])   # (1, 384) float32, unit length
    """

    backend = "onnx"

    def __init__(
        self, ref: ModelRef, model_fingerprint: str, graph: Path, record: dict, threads: int = 1,
        *, single_thread_session: bool = True, parallel_batches: bool = False,
    ):
        """Args:
            threads: intra-op threads of the session that encodes (queries: latency); with ``parallel_batches``
                (builds: throughput) that many one-thread sessions instead, each encoding its own batches.
            single_thread_session: also make the one-thread session ``encode(..., threads=1)`` runs on.
        """
        import onnxruntime as ort

        self.ref = ref
        self.fingerprint = model_fingerprint
        self.record = record
        self.precision = record["precision"]
        self.dim = int(record["dim"])
        self.threads = threads
        self._lower = bool(record["do_lower_case"])
        self._max_length = int(record["max_seq_length"])
        self.tokenize = tokenizer_of(ref.path, self._max_length)

        def session(intra_op_threads: int):
            options = ort.SessionOptions()
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # Idle intra-op threads sleep instead of spinning: on a shared 2-core box a spinning pool steals the
            # CPU that the other requests in flight need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

        # A build's batches run on one-thread sessions side by side, whose threads never wait for each other as
        # intra-op threads do at every operator: on 2 cores (AVX2), batches of 8 of a quarter of the TutorialVQA
        # texts, median of 5 runs 100.8 texts/s against 91.4 for one session of 2 threads (issue 7). The second
        # and further sessions are made at the first encoding with batches for all: a small rebuild goes without.
        self._parallel = threads if parallel_batches else 1
        self.session = session(1 if self._parallel > 1 else threads)
        self._batch_sessions = [self.session]
        self._more_sessions = lambda: [session(1) for _ in range(self._parallel - 1)]
        self._sessions_lock = threading.Lock()
        # The session ``encode(..., threads=1)`` runs on: a server encodes on one thread while other requests are
        # in flight (their work fills the other cores), on ``threads`` when a request is alone (issue 7). Made
        # now, not at the first request that needs it; a build, which never asks for it, goes without.
        one_thread = threads == 1 or self._parallel > 1 or not single_thread_session
        self.single_session = self.session if one_thread else session(1)
        self._inputs = [i.name for i in self.session.get_inputs()]

    @property
    def name(self) -> str:
        return self.ref.name

    def encode(
        self, texts: list[str], *, batch_size: int = 32, progress: bool = False, threads: int | None = None
    ) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (as sentence-transformers tokenises: stripped,
        lower-cased when the model says so, truncated at its max_seq_length).

        Args:
            threads: 1 to encode on one thread (the single-thread session); None: on the encoder's ``threads``.
        """
        texts = [str(t).strip() for t in texts]
        if self._lower:
            texts = [t.lower() for t in texts]
        batch_size = max(batch_size, 1)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Tokenised here, before any session runs: tokenizers' own threads contend with parallel sessions
        batches = iter([(start, self.tokenize(texts[start : start + batch_size]))
                        for start in range(0, len(texts), batch_size)])
        lock = threading.Lock()

        def run(session) -> None:
            """Encode the batches no other session has taken yet (ONNX Runtime releases the GIL)."""
            while True:
                with lock:
                    start, batch = next(batches, (None, None))
                if batch is None:
                    return
                out[start : start + batch_size] = session.run(None, {name: batch[name] for name in self._inputs})[0]

        if threads is None and self._parallel > 1 and len(texts) >= self._parallel * 2 * batch_size:
            with self._sessions_lock:
                if len(self._batch_sessions) < self._parallel:
                    self._batch_sessions += self._more_sessions()
            with ThreadPoolExecutor(len(self._batch_sessions) - 1) as pool:  # joined on leaving
                others = [pool.submit(run, session) for session in self._batch_sessions[1:]]
                run(self._batch_sessions[0])
                for other in others:
                    other.result()  # an error in another session is raised here
        else:
            run(self.single_session if threads == 1 else self.session)
        return out


def tokenizer_of(model_dir: Path, max_length: int):
    """A function from texts to the model's int64 inputs (``input_ids``, ``attention_mask``, ``token_type_ids``),
    padded to the longest and truncated at ``max_length`` as sentence-transformers does.

    It is the model's ``tokenizer.json`` read by the ``tokenizers`` library when the model has one (the fast
    tokenizer ``transformers`` would wrap, without importing ``transformers`` and torch: 2 s of start-up), else
    ``transformers.AutoTokenizer``. The export's verification against torch covers either.
    """
    config = _json_or_empty(model_dir / "tokenizer_config.json")
    pad = config.get("pad_token") or _json_or_empty(model_dir / "special_tokens_map.json").get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    right_padded = config.get("padding_side", "right") == "right"
    if (model_dir / "tokenizer.json").is_file() and isinstance(pad, str) and right_padded:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        pad_id = tokenizer.token_to_id(pad)
        if pad_id is not None:
            tokenizer.enable_truncation(max_length)
            tokenizer.enable_padding(pad_id=pad_id, pad_token=pad)

            def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
                encodings = tokenizer.encode_batch(texts)
                return {
                    "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
                }

            return tokenize
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)

    def tokenize_auto(texts: list[str]) -> dict[str, np.ndarray]:
        batch = auto(texts, padding=True, truncation="longest_first", max_length=max_length, return_tensors="np")
        return {name: np.asarray(values, dtype=np.int64) for name, values in batch.items()}

    return tokenize_auto


def _json_or_empty(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    precision = record.get("precision") if isinstance(record, dict) else None
    if precision not in PRECISIONS or (record.get("threshold"), record.get("recipe")) != (
        MIN_COSINE[precision], RECIPES[precision]
    ):
        return None  # made under another rule or recipe: make and verify again
    graph = path.with_suffix(".onnx")
    if record.get("verified") and (not graph.is_file() or graph.stat().st_size != record.get("bytes")):
        return None  # a graph gone or cut short: export again
    return record


def export_onnx(encoder: Encoder, cache_dir: Path, precision: str = "fp32") -> dict:
    """Export ``encoder``'s model to ONNX at ``precision``, verify it against torch on ``PROBES`` and keep it in
    ``cache_dir``. Returns the export's record (``verified`` false when refused: then no graph is kept).

    An export already in ``cache_dir`` is returned as it is.
    """
    graph, record_path = onnx_paths(cache_dir, encoder.fingerprint, precision)
    record = read_record(record_path)
    if record is not None:
        return record
    graph.parent.mkdir(parents=True, exist_ok=True)
    done = _EXPORTED.get((encoder.fingerprint, precision))
    if done is not None and read_record(done[1]) is not None:
        for source, target in zip(done, (graph, record_path)):
            _place(source, target, link=True)
        return read_record(record_path)
    work = graph.parent / f".tmp-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        fp32 = work / "fp32.onnx"
        _torch_export(encoder, fp32)
        made = fp32
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            made = work / "int8.onnx"
            quantize_dynamic(fp32, made, per_channel=True, weight_type=QuantType.QUInt8)
        record = _verify(encoder, made, precision)
        if record["verified"]:
            _place(made, graph)
        record_tmp = work / "record.json"
        record_tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _place(record_tmp, record_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if record["verified"]:
        _EXPORTED[(encoder.fingerprint, precision)] = (graph, record_path)
    return record


def _torch_export(encoder: Encoder, target: Path) -> None:
    import torch

    model = encoder.model.cpu().eval()
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # tokenize: sentence-transformers < 6
    features = tokenize(["an example question", "and a somewhat longer example answer to trace"])
    names = [name for name in model[0].tokenizer.model_input_names if isinstance(features.get(name), torch.Tensor)]

    class Pipeline(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            embedding = self.model(dict(zip(names, inputs)))["sentence_embedding"]
            return torch.nn.functional.normalize(embedding, p=2, dim=1)

    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about shapes taken as constants (batch and token axes are declared dynamic) and about
        # index ops with negative indices (there are none): verification checks the result instead.
        warnings.simplefilter("ignore")
        # The TorchScript exporter (dynamo=False): the dynamo one needs onnxscript and gains nothing here.
        torch.onnx.export(
            Pipeline(), tuple(features[n] for n in names), str(target), input_names=names,
            output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
        )


def _verify(encoder: Encoder, graph: Path, precision: str) -> dict:
    import onnxruntime
    import torch

    transformer = encoder.model[0]
    record = {
        "model_fingerprint": encoder.fingerprint,
        "precision": precision,
        "dim": encoder.dim,
        "max_seq_length": int(transformer.max_seq_length),
        "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "bytes": graph.stat().st_size,
        "threshold": MIN_COSINE[precision],
        "recipe": RECIPES[precision],
        "probes": len(PROBES),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    candidate = OnnxEncoder(encoder.ref, encoder.fingerprint, graph, record, threads=1)
    expected = encoder.encode(PROBES)
    cosines = np.sum(candidate.encode(PROBES, batch_size=1) * expected, axis=1)
    # Batched too: padding must not change a vector.
    batched = np.sum(candidate.encode(PROBES, batch_size=len(PROBES)) * expected, axis=1)
    record["min_cosine"] = round(float(min(cosines.min(), batched.min())), 6)
    record["verified"] = record["min_cosine"] >= record["threshold"]
    return record


def _place(source: Path, target: Path, *, link: bool = False) -> None:
    """Put ``source`` at ``target`` atomically (a hard link to it when ``link``, else moved)."""
    temp = target.parent / f".{target.name}.{secrets.token_hex(4)}"
    if link:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
    else:
        shutil.move(source, temp)
    os.replace(temp, target)
