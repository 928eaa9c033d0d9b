"""`import deal_core` does not load transformers' model classes: a llama.cpp process never needs them, and they
cost seconds and ~130 MB (import 6.2 s → 2.6 s on the loaded 2-core machine; llama.cpp peak RSS 731 → 601 MB).
A module-level `from transformers import AutoModel…`/`PreTrainedModel` anywhere on the import path fails this."""

import subprocess
import sys


def test_importing_the_package_leaves_transformers_model_classes_unloaded():
    code = ("import sys, deal_core, deal_core.cli, langchain_deal, llamaindex_deal; "
            "print(sorted(m for m in sys.modules if m.startswith(('transformers.modeling_utils', "
            "'transformers.models.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_transformers_backend_class_is_still_reachable_from_the_package():
    import deal_core
    from deal_core.backends.transformers import LanguageModel

    assert deal_core.LanguageModel is LanguageModel
