"""The stages of ``scripts/bench_perf.py``, one module each; ``bench_perf.py`` parses the options and runs them.

- ``corpus``: what the benchmark asks and indexes: the pool of real TutorialVQA questions and the synthetic scale
  corpus (``scale_corpus``, how it is made is told in bench_perf.py's docstring);
- ``encoders``: the query encoders one question at a time, and the agreement of the ONNX encoder with torch;
- ``builds``: a full build of the 408 TutorialVQA clips against raw batched encoding, and a 1 % rebuild;
- ``scale``: at each size, the scale index: recall against exact search, where a search's time goes, index RAM,
  then its HTTP load;
- ``http_load``: ``clipsearch serve`` (or any server) under a load client, the floor of an HTTP search
  (``floor_app``), and a process's CPU and RSS; ``scripts/bench_http.py`` takes its ``free_port`` from here;
- ``milvus``: the Milvus backend beside FAISS: the scale corpora as Milvus collections served under the same
  load, build and alias-switch time, and a 1 % upsert against a full rebuild;
- ``txtai``: txtai's API over the same clips, under the same load;
- ``verify``: what checking a version against its manifest costs at load (fast checks, full verification);
- ``report``: the targets of issue 7 and perf.json / perf.md.

Imports among them only go one way: ``scale`` uses ``corpus`` and ``http_load``, ``verify`` uses ``scale``,
``txtai`` uses ``http_load``, ``milvus`` uses ``builds``, ``corpus`` and ``http_load``; the others use no module of
this package. The TutorialVQA data is read through ``scripts/tutorialvqa.py``. The modules are imported as
``perf.*`` with scripts/ on ``sys.path`` (as it is for ``python scripts/bench_perf.py``).
"""
