#!/usr/bin/env python3
"""llama.cpp on the same GGUF and token ids as Verbatim's forward benchmark.

Usage: llama_cpp_bench.py MODEL TOKENS_JSON THREADS RUNS CONTEXT NEW
Prints JSON: {"prefill_tok_s": [...], "decode_tok_s": [...]} (one value per run).
Prefill: all tokens of TOKENS_JSON in one batch. Decode: CONTEXT tokens, then NEW greedy steps.
"""
import json, sys, time
import numpy as np
from llama_cpp import Llama

model, tokens_path, threads, runs, context, new = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
tokens = json.load(open(tokens_path))
llm = Llama(model_path=model, n_ctx=max(len(tokens), context + new) + 8, n_batch=512, n_ubatch=512,
            n_threads=threads, n_threads_batch=threads, verbose=False)
prefill, decode = [], []
for _ in range(runs + 1):  # the first run warms up
    llm.reset()
    t0 = time.perf_counter(); llm.eval(tokens); t1 = time.perf_counter()
    prefill.append(len(tokens) / (t1 - t0))
    llm.reset()
    llm.eval(tokens[:context])
    t0 = time.perf_counter()
    for _ in range(new):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([nxt])
    t1 = time.perf_counter()
    decode.append(new / (t1 - t0))
print(json.dumps({"prefill_tok_s": prefill[1:], "decode_tok_s": decode[1:]}))
