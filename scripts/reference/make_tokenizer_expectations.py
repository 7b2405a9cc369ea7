#!/usr/bin/env python3
"""Writes Tests/VerbatimModelTests/Data/tokenizer-expected.json: token ids for tricky strings
from an independent implementation (Hugging Face `tokenizers`, built from the vocabulary and
merges stored in the GGUF file), plus chat prompts rendered by Jinja2 from the GGUF's own
chat template.

Run: python3 -m venv /tmp/ref && /tmp/ref/bin/pip install tokenizers==0.23.3 gguf==0.19.0 jinja2
     /tmp/ref/bin/python scripts/reference/make_tokenizer_expectations.py models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json, sys, pathlib
from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers, AddedToken
import jinja2

def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    m = dict(zip(bs, cs))
    return [chr(m[b]) for b in range(256)]

def build(vocab, merges, specials):
    tk = Tokenizer(models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges],
                              unk_token=None, fuse_unk=False, byte_fallback=False))
    # tokenizer.ggml.pre = "smollm": each numeric character alone, then the GPT-2 split.
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tk

STRINGS = [
    "", " ", "  ", "\t", "\n", "\r\n", "Hello world", "Hello  world", "Hello world ", " leading space",
    "trailing spaces   ", "tabs\tand\t\ttabs", "line1\nline2\r\nline3\n\n\nend", "  indented\n    more\n\tmixed",
    "1234567890", "3.14159", "1,000,000 and 1e-9", "version 2.0.1-rc3", "½ ¾ ² ³ ⅻ Ⅻ", "٣٤٥ ١٢٣ ๑๒๓",
    "I'm you're he's we've they'll I'd", "I'M YOU'RE HE'S", "'s 't 're 've 'm 'll 'd", "don''t 'quoted'",
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "https://example.com/path?q=1&r=two#frag",
    "foo@bar.com <tag attr=\"v\"/>", "  ```swift\nlet x = 1\n```", "$$\\sum_{i=1}^{n} i^2$$",
    "👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇩🇪", "emoji👩‍💻code", "日本語のテキストと漢字", "中文，标点。还有“引号”",
    "한국어 문장입니다", "العربية مع التشكيل: مُحَمَّد", "עִבְרִית", "हिन्दी में लिखा", "ภาษาไทย",
    "Ελληνικά και Кириллица", "e\u0301 n\u0303 a\u0308\u0301 combining", "Zalgo: Z\u0351\u0300\u0347a\u0352l",
    "ctrl:\x00\x01\x04\x06\x13\x14\x16\x1d\x7f end", "bell\x07 escape\x1b[0m", "nbsp\u00a0here and\u3000ideographic",
    "line\u2028sep\u2029para\u0085nel", "zero\u200bwidth\u200cjoin\u200d", "\ufeffBOM", "mixed123abc456",
    "a1b2c3", "   12   34   ", "....!!!???", "—–-‐ dashes … ellipsis", "ﬁ ligature Ⅸ ㍱",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_end|><|endoftext|>",
    "text<|im_end|>text", "<|im_start|", "<|im_start|>>", "<repo_name>x<file_sep>y", "invalid \udcff? no",
    "The quick brown fox jumps over the lazy dog. " * 3, "A" * 40, "        " + "x",
]
# Strings Python cannot carry as UTF-8 are dropped (the lone surrogate above).
def encodable(s):
    try:
        s.encode("utf-8"); return True
    except UnicodeEncodeError:
        return False
STRINGS = [s for s in STRINGS if encodable(s)]

CHATS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "<|im_end|> inside"}],
]

def main(path, out):
    r = GGUFReader(path)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    template = r.fields["tokenizer.chat_template"].contents()
    specials = [tokens[i] for i, t in enumerate(types) if t == 3]
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = build(vocab, merges, specials)
    cases = []
    for s in STRINGS:
        for special in (False, True):
            if special:
                ids = tk.encode(s, add_special_tokens=False).ids
            else:
                plain = build(vocab, merges, [])
                ids = plain.encode(s, add_special_tokens=False).ids
            cases.append({"text": s, "special": special, "ids": ids})

    # A synthetic vocabulary with byte tokens missing ('a' and the byte 0x04), to pin down
    # what happens to bytes that have no token: they are dropped before merging.
    chars = byte_chars()
    small_tokens = [c for c in chars if c not in ("a", chars[4])] + ["bc", "Ġbc"]
    small_merges = ["b c", "Ġ bc"]
    small = build({t: i for i, t in enumerate(small_tokens)}, small_merges, [])
    synthetic = {"tokens": small_tokens, "merges": small_merges,
                 "cases": [{"text": s, "ids": small.encode(s).ids}
                           for s in ["bac", "b\x04c", "a", " bac abc", "xyz\x04", "aaa bbc"]]}

    env = jinja2.Environment()
    t = env.from_string(template)
    chats = []
    for messages in CHATS:
        for gen in (True, False):
            chats.append({"messages": messages, "add_generation_prompt": gen,
                          "text": t.render(messages=messages, add_generation_prompt=gen)})
    pathlib.Path(out).write_text(json.dumps(
        {"source": "tokenizers (Hugging Face) from the GGUF vocabulary and merges; jinja2 for chat",
         "cases": cases, "synthetic": synthetic, "chats": chats}, ensure_ascii=True, indent=1) + "\n")
    print(f"wrote {len(cases)} cases, {len(synthetic['cases'])} synthetic, {len(chats)} chats to {out}")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf",
         sys.argv[2] if len(sys.argv) > 2 else "Tests/VerbatimModelTests/Data/tokenizer-expected.json")
