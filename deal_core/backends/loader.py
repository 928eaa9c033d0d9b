"""Which engine runs a model: GGUF files (a path, Ollama's local store, the embedded file) run on llama.cpp.

`engine` is "auto", "llamacpp" or "transformers" (default: `$DEAL_ENGINE`, else "auto"). "auto" runs a GGUF path,
an `ollama:` model and the embedded model (see `EMBEDDED_ENGINE`) on llama.cpp, and everything else (Hugging Face
ids and directories, model objects, reward models) on transformers. Without llama-cpp-python installed, "auto" runs
the embedded model on transformers (no error); `engine="transformers"` (or `DEAL_ENGINE=transformers`) chooses it
always.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from deal_core.errors import ModelLoadError

ENGINES = ("auto", "llamacpp", "transformers")
# The engine "auto" picks for the embedded model (its file is a GGUF either way), chosen by `deal bench engines`
# (README "Engines"): on llama.cpp it loads in under a second at less than half transformers' memory, and greedy and
# DeAL run several times faster per token. (Concurrent `deal serve` requests take turns there rather than share
# passes: `engine="transformers"` is one setting away.)
EMBEDDED_ENGINE = "llamacpp"
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
GGUF_HINT = "install the llama.cpp engine with `pip install 'deal-align[gguf]'` (it compiles llama.cpp, ~6 min)"


def resolve_engine(engine: str | None) -> str:
    engine = (engine or os.environ.get("DEAL_ENGINE") or "auto").strip().lower()
    if engine not in ENGINES:
        raise ModelLoadError(f"engine={engine!r} is not one of {', '.join(ENGINES)}")
    return engine


def split_engine(model: object, engine: str | None) -> tuple[object, str | None]:
    """`"transformers:NAME"` / `"llamacpp:PATH"` → (NAME or PATH, that engine); anything else as given. An engine
    named both ways must agree."""
    if isinstance(model, str):
        prefix, sep, rest = model.partition(":")
        if sep and prefix in ENGINES[1:]:
            if engine not in (None, "auto", prefix):
                raise ModelLoadError(f"model {model!r} names engine {prefix!r} but engine={engine!r} was passed")
            return rest, prefix
    return model, engine


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def ollama_models_dir() -> Path:
    """Ollama's store: `$OLLAMA_MODELS`, else `~/.ollama/models`."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser()


def ollama_blob(spec: str) -> Path:
    """The GGUF blob of `ollama:NAME[:TAG]` in the local store: the manifest's layer whose media type is the model.
    NAME may carry a namespace (`user/name`) or a registry host (`host/ns/name`), as in `ollama pull`."""
    ref = spec.removeprefix("ollama:").strip()
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or not tag or "/" in tag or tag in (".", ".."):
        raise ModelLoadError(f"{spec!r} is not an Ollama model name: use ollama:NAME or ollama:NAME:TAG")
    if len(parts) == 1:
        parts = ["library", *parts]
    if len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    store = ollama_models_dir()
    manifest = store / "manifests" / Path(*parts) / tag
    if not manifest.is_file():
        raise ModelLoadError(f"Ollama model {ref!r} is not in the local store {store} (no {manifest}): "
                             f"run `ollama pull {ref}`, or set OLLAMA_MODELS to the store that holds it")
    try:
        layers = json.loads(manifest.read_text())["layers"]
        digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise ModelLoadError(f"Ollama manifest {manifest} names no layer of type {OLLAMA_MODEL_MEDIA_TYPE}") from None
    blob = store / "blobs" / str(digest).replace(":", "-")
    if "/" in str(digest) or not blob.is_file():
        raise ModelLoadError(f"Ollama model {ref!r}: its model blob {blob} is missing; run `ollama pull {ref}` again")
    return blob


def gguf_file(model: str) -> Path | None:
    """The GGUF file `model` names (`ollama:NAME[:TAG]`, or a path to a file that starts with the GGUF magic)."""
    if model.startswith("ollama:"):
        return ollama_blob(model)
    path = Path(model).expanduser()
    if model.endswith(".gguf") and not path.is_file():
        raise ModelLoadError(f"GGUF file {model!r} does not exist")
    if path.is_file():
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelLoadError(f"{model!r} is a file but not a GGUF model; pass a .gguf file or a directory")
        return path
    return None


def load_llamacpp(path: Path, name: str, **options: object):
    """The llama.cpp backend for a GGUF file (`options`: n_ctx, n_batch, n_threads)."""
    if not llamacpp_available():
        raise ModelLoadError(f"model {name!r} needs the llama.cpp engine, which is not installed: {GGUF_HINT}")
    from deal_core.backends.llamacpp import LlamaCppModel

    return LlamaCppModel(path=path, name=name, **options)
