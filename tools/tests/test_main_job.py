"""Tests for the README's main job: scripts/zero_shot_demo.sh and tools/fetch_model.py.

    python -m pytest -q tools/tests/test_main_job.py

The hub is tools/tests/hub_server.py on 127.0.0.1 serving tests/data/hub/tiny-altclip as
BAAI/AltCLIP; nothing here touches any other network. Every run gets its own HF_HOME and
models folder. The end-to-end test needs build/examples/zero_shot (skipped without it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(TESTS)
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, TESTS)

import altclip_format  # noqa: E402
import fetch_model  # noqa: E402
from hub_server import HubServer  # noqa: E402

TINY_HUB = os.path.join(ROOT, "tests", "data", "hub", "tiny-altclip")
TINY_MODEL = os.path.join(ROOT, "tests", "data", "models", "tiny.altclip")
FETCH = [sys.executable, os.path.join(TOOLS, "fetch_model.py")]
DEMO = os.path.join(ROOT, "scripts", "zero_shot_demo.sh")
ZERO_SHOT = os.path.join(ROOT, "build", "examples", "zero_shot")
CLOSED = "http://127.0.0.1:1"  # nothing listens on port 1
DEMO_LABELS = ["a cat", "一只狗", "un oiseau", "ein Auto", "кошка", "一杯咖啡"]



@pytest.fixture
def env(tmp_path):
    """A clean environment: own HF_HOME and models folder, no proxies, no tokens, no pip."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("HF_", "HUGGING", "ALTCLIP_")) and k.lower() not in (
             "http_proxy", "https_proxy", "all_proxy")}
    e.update({
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "ALTCLIP_MODEL_DIR": str(tmp_path / "models"),
        "ALTCLIP_NO_PIP": "1",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "HF_ENDPOINT": CLOSED,
    })
    return e


@pytest.fixture
def hub():
    pytest.importorskip("huggingface_hub")
    with HubServer(TINY_HUB, repo="BAAI/AltCLIP", revisions=["main", "refs/pr/7"], lifetime=120) as server:
        yield server


def run(cmd, env, timeout=120):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def fetch(env, *args):
    r = run(FETCH + list(args), env)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert "\n" not in path and os.path.isabs(path), r.stdout
    return path, r.stderr


def check_model(path, source=None):
    c = altclip_format.read_container(path)
    assert c.header["config"]["text_config"]["hidden_size"] == 32  # text_config_dict wins over 999
    assert c.blobs["sentencepiece.bpe.model"] == open(os.path.join(TINY_HUB, "sentencepiece.bpe.model"), "rb").read()
    if source is not None:
        assert c.header["metadata"]["source"] == source
    return c


# --------------------------------------------------------------------------------------
# hub_server itself

def test_hub_server_endpoints(hub):
    info = json.load(urllib.request.urlopen(hub.url + "/api/models/BAAI/AltCLIP/revision/main", timeout=5))
    assert info["sha"] == hub.sha and {s["rfilename"] for s in info["siblings"]} == set(hub.files)
    tree = json.load(urllib.request.urlopen(
        f"{hub.url}/api/models/BAAI/AltCLIP/tree/refs%2Fpr%2F7?recursive=true", timeout=5))
    assert {t["path"] for t in tree} == set(hub.files)
    url = f"{hub.url}/BAAI/AltCLIP/resolve/main/model.safetensors"
    head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5)
    size = os.path.getsize(os.path.join(TINY_HUB, "model.safetensors"))
    assert head.headers["X-Repo-Commit"] == hub.sha and int(head.headers["Content-Length"]) == size
    assert head.headers["X-Linked-Etag"].strip('"') == hub.files["model.safetensors"].sha256
    part = urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=8-15"}), timeout=5)
    assert part.status == 206 and part.read() == open(os.path.join(TINY_HUB, "model.safetensors"), "rb").read()[8:16]
    for path, status, code in (("/api/models/BAAI/AltCLIP/revision/nope", 404, "RevisionNotFound"),
                               ("/BAAI/AltCLIP/resolve/main/nope.bin", 404, "EntryNotFound"),
                               ("/api/models/BAAI/Other", 401, "RepoNotFound")):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(hub.url + path, timeout=5)
        assert e.value.code == status and e.value.headers["X-Error-Code"] == code


def test_hub_server_stops_by_itself():
    with HubServer(TINY_HUB, lifetime=0.3) as server:
        assert server._httpd.server_address[0] == "127.0.0.1"
        urllib.request.urlopen(server.url + "/api/models/BAAI/AltCLIP", timeout=5).read()
        deadline = time.monotonic() + 5
        while not server._stopped.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server._stopped.is_set()
        with pytest.raises(OSError):
            urllib.request.urlopen(server.url + "/api/models/BAAI/AltCLIP", timeout=2).read()


# --------------------------------------------------------------------------------------
# (a) the download path

def test_download_once_then_cached(env, hub, tmp_path):
    env["HF_ENDPOINT"] = hub.url
    path, err = fetch(env)
    assert path == str(tmp_path / "models" / "BAAI--AltCLIP-f32.altclip")
    check_model(path, source="BAAI/AltCLIP")
    assert hub.count("GET", "/resolve/") == 4  # config, preprocessor, sentencepiece, safetensors
    assert "downloading BAAI/AltCLIP" in err and "wrote" in err
    assert os.path.isdir(tmp_path / "hf" / "hub" / "models--BAAI--AltCLIP")  # HF_HOME respected

    before, mtime = len(hub.requests), os.path.getmtime(path)
    time.sleep(0.05)
    again, err = fetch(env)
    assert again == path and "using" in err and "wrote" not in err
    assert len(hub.requests) == before  # no download, not even a request
    assert os.path.getmtime(path) == mtime  # no conversion

    # Without the model file but with the hub cache: converted again, nothing downloaded.
    os.remove(path)
    fetch(env)
    assert hub.count("GET", "/resolve/") == 4
    check_model(path)


def test_download_revision_and_dtype(env, hub, tmp_path):
    env.update(HF_ENDPOINT=hub.url, ALTCLIP_REVISION="refs/pr/7", ALTCLIP_DTYPE="f16")
    path, _ = fetch(env)
    assert os.path.basename(path) == "BAAI--AltCLIP@refs-pr-7-f16.altclip"
    c = check_model(path)
    assert c.header["metadata"]["revision"] == "refs/pr/7" and c.header["metadata"]["dtype"] == "f16"


def test_unknown_repo_is_a_clear_error(env, hub):
    env.update(HF_ENDPOINT=hub.url, ALTCLIP_REPO="BAAI/NoSuchRepo")
    r = run(FETCH, env)
    assert r.returncode == 2 and "fetch_model: error:" in r.stderr and "BAAI/NoSuchRepo" in r.stderr
    assert "Traceback" not in r.stderr


def test_offline_after_download_uses_hub_cache(env, hub, tmp_path):
    env["HF_ENDPOINT"] = hub.url
    path, _ = fetch(env)
    os.remove(path)
    env["HF_ENDPOINT"] = CLOSED
    again, err = fetch(env)
    assert again == path and "cached download" in err
    check_model(path)


# --------------------------------------------------------------------------------------
# (b) a local folder, a model file

def test_local_folder_converted_once(env, tmp_path):
    folder = tmp_path / "src" / "AltCLIP"
    shutil.copytree(TINY_HUB, folder)
    env["ALTCLIP_MODEL"] = str(folder)
    path, err = fetch(env)
    assert path == str(tmp_path / "models" / "AltCLIP-f32.altclip") and "converting" in err
    check_model(path, source="AltCLIP")
    mtime = os.path.getmtime(path)
    again, err = fetch(env)
    assert again == path and "using" in err and os.path.getmtime(path) == mtime

    # A newer source file: converted again.
    os.utime(folder / "config.json", (mtime + 10, mtime + 10))
    _, err = fetch(env)
    assert "converting" in err and os.path.getmtime(path) > mtime

    # Another folder with the same name: converted again, not mistaken for the first.
    other = tmp_path / "elsewhere" / "AltCLIP"
    shutil.copytree(TINY_HUB, other)
    os.utime(other / "config.json", (mtime - 100, mtime - 100))
    _, err = fetch(env, "--model", str(other))
    assert "converting" in err

    # The CLI option wins over the environment variable; a relative path works.
    env["ALTCLIP_MODEL"] = "/nonexistent"
    _, err = fetch(env, "--model", os.path.relpath(other, ROOT))
    assert "using" in err


def test_model_file_used_as_is(env, tmp_path):
    env["ALTCLIP_MODEL"] = TINY_MODEL
    path, err = fetch(env)
    assert path == TINY_MODEL and not (tmp_path / "models").exists()


@pytest.mark.parametrize("model, message", [
    (os.path.join(TINY_HUB, "model.safetensors"), "pass the folder"),
    ("/nonexistent/model.altclip", "no such file or folder"),
])
def test_bad_model_argument(env, model, message):
    r = run(FETCH + ["--model", model], env)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------
# (c) no network, no model: fast, with the way out

def test_offline_without_model_fails_fast(env):
    start = time.monotonic()
    r = run(FETCH, env, timeout=30)
    elapsed = time.monotonic() - start
    assert r.returncode == 2 and r.stdout == ""
    assert elapsed < 5, elapsed
    assert "ALTCLIP_MODEL=/path/to/model.altclip" in r.stderr
    assert "ALTCLIP_MODEL=/path/to/AltCLIP-folder" in r.stderr
    assert CLOSED in r.stderr and "Traceback" not in r.stderr


def test_probe_has_a_hard_deadline(tmp_path):
    import socket
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        start = time.monotonic()
        reason = fetch_model.probe(f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.5)
        assert reason is not None and time.monotonic() - start < 2


def test_demo_script_fails_fast_offline(env):
    """Before setup and build: the script stops at the model check."""
    start = time.monotonic()
    r = run(["bash", DEMO], env, timeout=60)
    assert r.returncode != 0 and time.monotonic() - start < 10
    assert "ALTCLIP_MODEL=" in r.stderr and "setup:" not in r.stderr and "build:" not in r.stderr


# --------------------------------------------------------------------------------------
# (d) the whole thing

@pytest.mark.skipif(not os.access(ZERO_SHOT, os.X_OK),
                    reason="build/examples/zero_shot is not built (cmake -S . -B build && cmake --build build "
                           "--target zero_shot)")
def test_demo_end_to_end(env, hub, tmp_path):
    env.update(HF_ENDPOINT=hub.url, ALTCLIP_SKIP_SETUP="1", ALTCLIP_SKIP_BUILD="1",
               ALTCLIP_BUILD_DIR=os.path.join(ROOT, "build"))
    r = run(["bash", DEMO], env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "tests/data/images/chelsea.png"
    ranked = [re.fullmatch(r"\s+(\d+\.\d\d)%  (.+)", line) for line in lines[1:]]
    assert all(ranked) and sorted(m.group(2) for m in ranked) == sorted(DEMO_LABELS), r.stdout
    probs = [float(m.group(1)) for m in ranked]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 100) < 0.1
    assert os.path.isfile(tmp_path / "models" / "BAAI--AltCLIP-f32.altclip")

    # Second run: the same answer, from the converted file, with no hub request.
    before = len(hub.requests)
    again = run(["bash", DEMO, "--", "--top-k", "2"], env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == lines[:3] and len(hub.requests) == before


# --------------------------------------------------------------------------------------
# (e) issue #15: the demo's stdout is zero_shot's alone, --help is the header, a folder that
# is no checkpoint is refused before setup and build

def test_demo_help_is_the_header_comment_only(env):
    r = run(["bash", DEMO, "--help"], env, timeout=30)
    assert r.returncode == 0 and r.stderr == ""
    assert "--model PATH" in r.stdout and "ALTCLIP_SKIP_BUILD" in r.stdout
    assert "set -euo pipefail" not in r.stdout and "#!" not in r.stdout


def test_demo_refuses_a_folder_that_is_no_checkpoint_before_setup(env, tmp_path):
    folder = tmp_path / "not-a-checkpoint"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    env["ALTCLIP_MODEL"] = str(folder)
    start = time.monotonic()
    r = run(["bash", DEMO], env, timeout=60)
    assert r.returncode != 0 and time.monotonic() - start < 10 and r.stdout == ""
    assert "no AltCLIP checkpoint" in r.stderr and "config.json" in r.stderr
    assert "setup:" not in r.stderr and "build:" not in r.stderr


def test_fetch_check_refuses_a_partial_checkpoint(env, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(TINY_HUB, folder)
    os.remove(folder / "model.safetensors")
    r = run(FETCH + ["--check", "--model", str(folder)], env)
    assert r.returncode == 2 and "weights" in r.stderr and "Traceback" not in r.stderr
    r = run(FETCH + ["--check", "--model", TINY_HUB], env)
    assert r.returncode == 0 and "will convert" in r.stderr


@pytest.mark.skipif(not os.access(ZERO_SHOT, os.X_OK),
                    reason="build/examples/zero_shot is not built (cmake -S . -B build && cmake --build build "
                           "--target zero_shot)")
def test_demo_json_on_stdout_is_json_alone(env):
    """With the build step (cmake prints `[100%] Built target zero_shot`), stdout is JSON."""
    env.update(ALTCLIP_MODEL=TINY_MODEL, ALTCLIP_SKIP_SETUP="1", ALTCLIP_BUILD_DIR=os.path.join(ROOT, "build"))
    r = run(["bash", DEMO, "--", "--json", "--top-k", "2"], env, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"][0]["image"] == "tests/data/images/chelsea.png"
    assert len(out["results"][0]["labels"]) == 2
    assert "Built target zero_shot" in r.stderr
