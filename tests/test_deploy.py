"""The Dockerfile and the Milvus compose file: parsed and checked (no container runtime needed)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from clipsearch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "deploy" / "milvus" / "docker-compose.yml"
SERVICES = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
MILVUS = "standalone"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction: continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(word.upper(), rest) for word, rest in (line.split(None, 1) for line in lines)]


def args(instruction: str) -> list[str]:
    return [rest for name, rest in dockerfile() if name == instruction]


def exec_form(rest: str) -> list[str]:
    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)


def pinned(image: str) -> bool:
    """A concrete tag: a full x.y.z version or a MinIO RELEASE timestamp, never `latest` or no tag."""
    _, _, tag = image.rpartition("/")[2].partition(":")
    return bool(re.search(r"\d+\.\d+\.\d+|^RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$", tag))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    pairs = (item.split("=", 1) for item in env) if isinstance(env, list) else env.items()
    return {key: str(value) for key, value in pairs}


def container_ports(service: str, published_only: bool = False) -> set[int]:
    ports = [str(p).split("/")[0].split(":") for p in SERVICES[service].get("ports", [])]
    return {int(p[-1]) for p in ports if len(p) > 1 or not published_only}


def depends_on(service: str) -> dict[str, str]:
    deps = SERVICES[service].get("depends_on", {})
    return {d: "service_started" for d in deps} if isinstance(deps, list) else {
        d: spec.get("condition", "service_started") for d, spec in deps.items()}


def test_compose_runs_milvus_standalone_with_etcd_minio_and_clipsearch():
    assert set(SERVICES) >= {MILVUS, "etcd", "minio", "clipsearch"}
    assert SERVICES[MILVUS]["image"].startswith("milvusdb/milvus:v2.5.")
    assert SERVICES[MILVUS]["command"] == ["milvus", "run", "standalone"]
    assert environment(MILVUS) == {"ETCD_ENDPOINTS": "etcd:2379", "MINIO_ADDRESS": "minio:9000"}
    assert "9091/healthz" in " ".join(SERVICES[MILVUS]["healthcheck"]["test"])


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_compose_image_is_pinned_or_built_here(service):
    spec = SERVICES[service]
    if "build" in spec:
        context = COMPOSE_FILE.parent / spec["build"]["context"]
        assert (context / spec["build"]["dockerfile"]).resolve() == DOCKERFILE
    else:
        assert pinned(spec["image"]), spec["image"]


def test_milvus_serves_grpc_and_health_and_waits_for_etcd_and_minio():
    assert container_ports(MILVUS, published_only=True) >= {19530, 9091}
    assert depends_on(MILVUS) == {"etcd": "service_healthy", "minio": "service_healthy"}


def test_clipsearch_uses_the_milvus_service_and_publishes_8000():
    env = environment("clipsearch")
    assert env["CLIPSEARCH_BACKEND"] == "milvus"
    uri = urlparse(env["CLIPSEARCH_MILVUS_URI"])
    assert (uri.hostname, uri.port) == (MILVUS, 19530)
    assert "8000:8000" in SERVICES["clipsearch"]["ports"]
    assert depends_on("clipsearch") == {MILVUS: "service_healthy"}
    mounts = {str(v).split(":")[1] for v in SERVICES["clipsearch"]["volumes"]}
    assert any(Path(env["CLIPSEARCH_INDEX"]).is_relative_to(m) for m in mounts), "index not on a volume"


BOTH_FILES = COMPOSE_FILE.read_text() + DOCKERFILE.read_text()
NAMED = sorted(set(re.findall(r"\bCLIPSEARCH_[A-Z0-9_]+", BOTH_FILES)))


@pytest.mark.parametrize("variable", NAMED)
def test_every_clipsearch_variable_named_is_a_setting(variable):
    assert variable in {f"CLIPSEARCH_{name.upper()}" for name in Settings.model_fields}


def test_dockerfile_base_images_are_pinned():
    stages = {rest.split()[-1] for rest in args("FROM") if " AS " in rest.upper()}
    bases = [rest.split()[0] for rest in args("FROM")]
    assert bases and all(pinned(b) for b in bases if b not in stages), bases


def test_cpu_torch_is_installed_before_the_project():
    runs = args("RUN")
    cpu_torch = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    torch = next(i for i, r in enumerate(runs) if cpu_torch in r)
    the_project = r"pip install\s+(\S+\s+)*['\"]?\.(\[[\w,]+\])?['\"]?(\s|$)"  # `.` or `'.[extra]'`
    project = next(i for i, r in enumerate(runs) if re.search(the_project, r))
    assert torch < project


def test_image_runs_offline_as_a_non_root_user():
    env = dict(kv.split("=", 1) for rest in args("ENV") for kv in shlex.split(rest))
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    uid = args("USER")[-1].split(":")[0]
    assert uid.isdigit() and uid != "0"


def test_image_serves_the_example_index_it_builds():
    build = next(shlex.split(r) for r in args("RUN") if r.startswith("clipsearch index build "))
    assert f"CLIPSEARCH_INDEX={build[build.index('--out') + 1]}" in " ".join(args("ENV")).split()


def test_cmd_serves_on_the_exposed_port_and_the_healthcheck_asks_it():
    cmd = exec_form(args("CMD")[-1])
    port = cmd[cmd.index("--port") + 1]
    assert cmd[:2] == ["clipsearch", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert args("EXPOSE") == [port] == ["8000"]
    healthcheck = args("HEALTHCHECK")[-1]
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck and "python" in healthcheck


def test_every_copied_file_is_in_the_repo_and_in_the_build_context():
    ignored = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    copies = [exec_form(r) for r in args("COPY")]
    sources = [s for words in copies if not any(w.startswith("--from") for w in words)
               for s in [w for w in words if not w.startswith("--")][:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, p) or source.startswith(p + "/") for p in ignored), source
