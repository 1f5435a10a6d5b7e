"""The model stage: local weights in, a model ready for the engine out, with its identity and precision.

- `policy`: which device and dtype a run uses, checked against the hardware and recorded with why.
- `manifest`: the model's identity, every file's name, size and SHA-256 bound into one digest.
- `loader`: loading a local safetensors folder or .gguf file, refusing anything unsafe or damaged.
- `default_model`: the bundled SmolLM2-135M-Instruct, converted once into evalkit's cache.

Nothing here touches the network: loads are local-files-only with `trust_remote_code` off, and
pickled weights are refused unless asked for by name. torch and transformers are imported inside
functions, so importing this package (to verify a manifest, say) stays cheap.
"""

from evalkit.model.default_model import (
    DEFAULT_MODEL_NAME,
    default_model_dir,
    install_default_model,
)
from evalkit.model.loader import LoadedModel, load_model
from evalkit.model.manifest import (
    FileEntry,
    ModelManifest,
    build_manifest,
    list_model_files,
    verify_manifest,
)
from evalkit.model.policy import Precision, choose_precision

__all__ = [
    "DEFAULT_MODEL_NAME",
    "FileEntry",
    "LoadedModel",
    "ModelManifest",
    "Precision",
    "build_manifest",
    "choose_precision",
    "default_model_dir",
    "install_default_model",
    "list_model_files",
    "load_model",
    "verify_manifest",
]
