#!/usr/bin/env python3
"""Get an altclip model file for the examples: use one, convert one, or download and convert
BAAI/AltCLIP, each at most once. Used by scripts/zero_shot_demo.sh (docs/main_job.md).

    tools/fetch_model.py [--model PATH] [--repo ID] [--revision REV] [--dtype f32|f16|bf16|q8]
                         [--models-dir DIR] [--check] [--quiet]

Prints the model file's absolute path on stdout (its only output there); messages and
progress go to stderr. Exit status 0, or 2 with `fetch_model: error: ...`.

Where the model comes from (first match):
  1. --model PATH / ALTCLIP_MODEL=PATH naming a converted `.altclip` file: used as it is.
  2. --model / ALTCLIP_MODEL naming a Hugging Face checkpoint folder (config.json,
     preprocessor_config.json, sentencepiece.bpe.model, weights): converted once into
     MODELS_DIR/<folder-name>-<dtype>.altclip, again only when a source file is newer
     than that file (or it came from another folder of the same name).
  3. Otherwise the hub repo --repo / ALTCLIP_REPO (default BAAI/AltCLIP) at --revision /
     ALTCLIP_REVISION (default: the repo's main branch), downloaded through tools/convert.py
     (huggingface_hub.snapshot_download; pip-installs huggingface_hub if it is missing) and
     converted into MODELS_DIR/<owner>--<name>[@<revision>]-<dtype>.altclip. Once that file
     exists, nothing is downloaded or converted again, and the network is not touched.
MODELS_DIR is --models-dir / ALTCLIP_MODEL_DIR, default <repo>/models. The dtype is --dtype /
ALTCLIP_DTYPE, default f32. HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE work as usual.

Before downloading, it checks within a few seconds that ${HF_ENDPOINT:-https://huggingface.co}
answers. If not, it uses a complete snapshot from the huggingface_hub cache if there is one,
and otherwise stops at once with a message on how to point ALTCLIP_MODEL at a local model.

--check does only the cheap part (no numpy, no download, no conversion): exit 0 if a model is
at hand or the hub answers, 2 with the same message otherwise. The demo script runs it before
the long setup and build steps.

From Python (put tools/ on sys.path): `fetch_model.fetch(model=None, repo=None, revision=None,
dtype=None, models_dir=None, env=os.environ, log=print_to_stderr) -> str` (the model path),
`fetch_model.FetchError`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import site
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from typing import Callable, List, Mapping, Optional

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS)
DEFAULT_REPO = "BAAI/AltCLIP"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_MODELS_DIR = os.path.join(REPO_ROOT, "models")
DTYPES = ("f32", "f16", "bf16", "q8")
MAGIC = b"ALTCLIP\0"  # tools/altclip_format.MAGIC (kept here so --check needs no numpy)
PROBE_TIMEOUT = 5.0
# The files tools/convert.py reads from a checkpoint folder.
SOURCE_FILE = re.compile(r"^(config\.json|preprocessor_config\.json|processor_config\.json|sentencepiece\.bpe\.model|"
                         r"model.*\.safetensors(\.index\.json)?|pytorch_model.*\.bin(\.index\.json)?)$")


class FetchError(Exception):
    """An expected failure, printed as `fetch_model: error: <message>` without a traceback."""


def _stderr(msg: str) -> None:
    sys.stderr.write(f"fetch_model: {msg}\n")
    sys.stderr.flush()


def _how_to_point(repo: str) -> str:
    return (
        "  Point it at a model you already have instead:\n"
        "    ALTCLIP_MODEL=/path/to/model.altclip scripts/zero_shot_demo.sh     (a converted model file)\n"
        f"    ALTCLIP_MODEL=/path/to/AltCLIP-folder scripts/zero_shot_demo.sh    (a downloaded {repo} folder;\n"
        "        converted once into the models folder)\n"
        "  (or --model PATH; tools/fetch_model.py takes the same), or use a hub mirror with HF_ENDPOINT=URL.")


# --------------------------------------------------------------------------------------
# cache names

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def cache_path_for_folder(folder: str, models_dir: str, dtype: str) -> str:
    name = os.path.basename(os.path.normpath(os.path.abspath(folder)))
    return os.path.join(models_dir, f"{_safe(name)}-{dtype}.altclip")


def cache_path_for_repo(repo: str, revision: Optional[str], models_dir: str, dtype: str) -> str:
    name = _safe(repo.replace("/", "--"))
    if revision not in (None, "", "main"):
        name += "@" + _safe(revision)
    return os.path.join(models_dir, f"{name}-{dtype}.altclip")


def _sidecar(path: str) -> str:
    return path + ".source"


def _read_sidecar(path: str) -> Optional[dict]:
    try:
        with open(_sidecar(path), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _write_sidecar(path: str, info: dict) -> None:
    tmp = _sidecar(path) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    os.replace(tmp, _sidecar(path))


def is_model_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def source_files(folder: str) -> List[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if SOURCE_FILE.match(n) and os.path.isfile(os.path.join(folder, n)))


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # what tools/convert.py reads, in its order


def missing_checkpoint_files(folder: str) -> List[str]:
    """What a folder lacks to be a checkpoint tools/convert.py converts (empty if nothing)."""
    missing = [n for n in ("config.json", "preprocessor_config.json", "sentencepiece.bpe.model")
               if not os.path.isfile(os.path.join(folder, n))]
    if not any(os.path.isfile(os.path.join(folder, n)) for n in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    return missing


def folder_cache_is_fresh(folder: str, out: str) -> bool:
    """`out` exists, is a model file, was converted from this folder, and is newer than its sources."""
    if not is_model_file(out):
        return False
    info = _read_sidecar(out)
    if info is not None and info.get("source") != os.path.abspath(folder):
        return False
    mtime = os.path.getmtime(out)
    return all(os.path.getmtime(p) <= mtime for p in source_files(folder))


# --------------------------------------------------------------------------------------
# network

def probe(endpoint: str, timeout: float = PROBE_TIMEOUT) -> Optional[str]:
    """None if ENDPOINT answers HTTP within `timeout` seconds (any status), else the reason.

    Runs in a thread with a hard deadline, so a hanging DNS lookup cannot stall it either.
    """
    result: List[Optional[str]] = []

    def run():
        try:
            req = urllib.request.Request(endpoint.rstrip("/") + "/api/models", method="HEAD",
                                         headers={"User-Agent": "altclip-fetch_model/1.0"})
            with urllib.request.urlopen(req, timeout=timeout):
                pass
            result.append(None)
        except urllib.error.HTTPError:
            result.append(None)  # it answered
        except urllib.error.URLError as e:
            result.append(f"{type(e.reason).__name__}: {e.reason}")
        except Exception as e:  # timeouts, resets, bad URLs
            result.append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=run, name="probe", daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if not result:
        return f"no answer within {timeout:g} s"
    return result[0]


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def ensure_huggingface_hub(env: Mapping[str, str], log: Callable[[str], None]):
    try:
        import huggingface_hub  # noqa: F401
        return huggingface_hub
    except ImportError:
        pass
    if _truthy(env.get("ALTCLIP_NO_PIP")):
        raise FetchError("huggingface_hub is not installed (and ALTCLIP_NO_PIP is set): "
                         "`python3 -m pip install huggingface_hub`")
    log("installing huggingface_hub with pip (needed to download from the hub)")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "huggingface_hub"]
    penv = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=penv)
    if r.returncode != 0 and "externally-managed-environment" in r.stderr:
        # A distribution Python (PEP 668): install into the user site, not the system.
        r = subprocess.run(cmd + ["--user", "--break-system-packages"], stderr=subprocess.PIPE, text=True, env=penv)
    if r.returncode != 0:
        raise FetchError("could not install huggingface_hub with pip:\n" + r.stderr.strip()[-2000:])
    importlib.invalidate_caches()
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site) and user_site not in sys.path:
        sys.path.append(user_site)
    import huggingface_hub  # noqa: F811
    return huggingface_hub


_SMALL_FILES = ["config.json", "preprocessor_config.json", "sentencepiece.bpe.model"]


def cached_snapshot(repo: str, revision: Optional[str]) -> Optional[str]:
    """A complete snapshot of REPO in the huggingface_hub cache (no network), or None."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for weights in (["model.safetensors", "model*.safetensors.index.json", "model-*.safetensors"],
                    ["pytorch_model*.bin", "pytorch_model.bin.index.json"]):
        try:
            folder = snapshot_download(repo, revision=revision, allow_patterns=_SMALL_FILES + weights,
                                       local_files_only=True)
        except Exception:
            continue
        names = set(os.listdir(folder))
        if all(n in names for n in _SMALL_FILES) and any(SOURCE_FILE.match(n) and n not in _SMALL_FILES
                                                          for n in names):
            return folder
    return None


# --------------------------------------------------------------------------------------
# conversion

def _convert(source: str, out: str, dtype: str, revision: Optional[str], quiet: bool,
             log: Callable[[str], None], sidecar: dict) -> None:
    sys.path.insert(0, TOOLS)
    try:
        import convert
    except ImportError as e:
        raise FetchError(f"the converter needs numpy ({e}); run scripts/setup.sh first") from None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    progress = None if quiet else convert._Progress()
    try:
        convert.convert(source, out, dtype, progress, revision)
    except convert.ConvertError as e:
        if progress:
            progress.end_line()
        raise FetchError(str(e)) from None
    except KeyboardInterrupt:
        if progress:
            progress.end_line()
        raise
    _write_sidecar(out, sidecar)
    log(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


# --------------------------------------------------------------------------------------
# the whole thing

def fetch(model: Optional[str] = None, repo: Optional[str] = None, revision: Optional[str] = None,
          dtype: Optional[str] = None, models_dir: Optional[str] = None, env: Mapping[str, str] = os.environ,
          log: Callable[[str], None] = _stderr, quiet: bool = False, check_only: bool = False) -> str:
    """The path of a ready model file (see the module docstring). With check_only, only decide
    whether one can be had, without numpy, downloads or conversion; return a description."""
    model = model or env.get("ALTCLIP_MODEL") or None
    repo = repo or env.get("ALTCLIP_REPO") or DEFAULT_REPO
    revision = revision or env.get("ALTCLIP_REVISION") or None
    dtype = dtype or env.get("ALTCLIP_DTYPE") or "f32"
    models_dir = os.path.abspath(models_dir or env.get("ALTCLIP_MODEL_DIR") or DEFAULT_MODELS_DIR)
    if dtype not in DTYPES:
        raise FetchError(f"unknown dtype {dtype!r} (ALTCLIP_DTYPE / --dtype); choose one of {', '.join(DTYPES)}")

    # 1. and 2.: a local file or folder
    if model:
        path = os.path.abspath(os.path.expanduser(model))
        if os.path.isfile(path):
            if not is_model_file(path):
                hint = (" (for a Hugging Face checkpoint, pass the folder that holds it)"
                        if SOURCE_FILE.match(os.path.basename(path)) else "")
                raise FetchError(f"{model}: not an altclip model file{hint}")
            if check_only:
                return f"model file {path}"
            log(f"using the model file {path}")
            return path
        if os.path.isdir(path):
            out = cache_path_for_folder(path, models_dir, dtype)
            if folder_cache_is_fresh(path, out):
                if check_only:
                    return f"model file {out} (converted earlier from {path})"
                log(f"using {out} (converted earlier from {path})")
                return out
            # Checked before --check answers, so that the demo stops before its setup and build.
            missing = missing_checkpoint_files(path)
            if missing:
                raise FetchError(f"{model}: no AltCLIP checkpoint in this folder (it lacks "
                                 f"{', '.join(missing)}). Give an altclip model file or a downloaded "
                                 f"AltCLIP folder (config.json, preprocessor_config.json, "
                                 f"sentencepiece.bpe.model and weights).")
            if check_only:
                return f"will convert {path} into {out}"
            log(f"converting {path} into {out} (once)")
            _convert(path, out, dtype, None, quiet, log,
                     {"source": path, "dtype": dtype})
            return out
        raise FetchError(f"ALTCLIP_MODEL / --model {model}: no such file or folder. It must name an altclip "
                         f"model file or an AltCLIP checkpoint folder (for another hub repo, set ALTCLIP_REPO).")

    # 3.: the hub
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$", repo):
        raise FetchError(f"ALTCLIP_REPO / --repo {repo!r} is not a hub repo id like BAAI/AltCLIP")
    out = cache_path_for_repo(repo, revision, models_dir, dtype)
    if is_model_file(out):
        if check_only:
            return f"model file {out} (downloaded and converted earlier)"
        log(f"using {out} (downloaded and converted earlier; delete it to fetch {repo} again)")
        return out

    endpoint = env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    what = f"{repo}" + (f" (revision {revision})" if revision else "")
    offline = _truthy(env.get("HF_HUB_OFFLINE"))
    reason = "HF_HUB_OFFLINE is set" if offline else probe(endpoint)
    if reason is not None:
        snapshot = cached_snapshot(repo, revision)
        if snapshot is None:
            raise FetchError(
                f"no model here, and the hub cannot be reached to download {what}: {endpoint}: {reason}.\n"
                + _how_to_point(repo))
        if check_only:
            return f"will convert the cached download {snapshot} into {out}"
        log(f"{endpoint} cannot be reached ({reason}); converting the cached download {snapshot}")
        _convert(snapshot, out, dtype, None, quiet, log, {"source": repo, "revision": revision, "dtype": dtype})
        return out
    if check_only:
        return f"will download {what} from {endpoint} and convert it into {out}"

    hub = ensure_huggingface_hub(env, log)
    if quiet:
        hub.utils.disable_progress_bars()
    size = " (once; about 3.5 GB)" if repo == DEFAULT_REPO and not revision else " (once)"
    log(f"downloading {what} from {endpoint}{size}, then converting it into {out}")
    _convert(repo, out, dtype, revision, quiet, log, {"source": repo, "revision": revision, "dtype": dtype})
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="fetch_model.py", description=(
        "Print the path of an altclip model file, converting a local checkpoint folder or downloading "
        "and converting BAAI/AltCLIP first if needed (once)."))
    ap.add_argument("--model", help="a .altclip file or an AltCLIP checkpoint folder (default: $ALTCLIP_MODEL)")
    ap.add_argument("--repo", help=f"hub repo id to download (default: $ALTCLIP_REPO or {DEFAULT_REPO})")
    ap.add_argument("--revision", help="hub revision (default: $ALTCLIP_REVISION or main)")
    ap.add_argument("--dtype", choices=DTYPES, help="weight dtype of a converted model (default: $ALTCLIP_DTYPE or f32)")
    ap.add_argument("--models-dir", help="where converted models go (default: $ALTCLIP_MODEL_DIR or <repo>/models)")
    ap.add_argument("--check", action="store_true",
                    help="only check that a model can be had (fast, no download or conversion)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        result = fetch(args.model, args.repo, args.revision, args.dtype, args.models_dir,
                       quiet=args.quiet, check_only=args.check)
    except FetchError as e:
        sys.stderr.write(f"fetch_model: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\nfetch_model: interrupted\n")
        return 130
    if args.check:
        _stderr(f"model: {result}")
    else:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
