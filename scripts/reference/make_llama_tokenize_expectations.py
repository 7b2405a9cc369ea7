#!/usr/bin/env python3
"""Token ids that llama.cpp's own tokenizer gives for tricky strings, as test data.

Usage: make_llama_tokenize_expectations.py LLAMA_TOKENIZE MODEL.gguf OUT.json

LLAMA_TOKENIZE is llama.cpp's `llama-tokenize`, built from the llama.cpp tree vendored in the
PyPI sdist of llama-cpp-python 0.3.36 (Benchmarks/baseline/build-llama-cpp prints its folder).
Each string is tokenized twice: with special tokens parsed (the chat-template case) and
without; both with the model's BOS rule. The output lists {text, special, ids}.
"""
import json
import subprocess
import sys
import tempfile

STRINGS = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n", "\n ", " \t \n ",
    "Hello world", "Hello  world", " Hello world", "Hello world ", "hello\tworld", "line one\nline two\r\nline three",
    "0", "7", "42", "123", "1234", "12345", "3.14159", "1,000,000", "2026-12-06", "v1.2.3-rc4", "0x1F", "1e-10",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) { sum += a[i]; }", "if a == b:\n\tpass",
    "<div class=\"x\">text</div>", "SELECT * FROM t WHERE id = 1;", "https://example.com/a?b=c&d=e", "path/to/file.txt",
    "don't", "I'm", "we'll", "they've", "it's", "Y'all", "'quoted'", "\"double\"",
    "naïve café", "Ångström", "e\u0301", "a\u0308o\u0308", "\u00e9\u0301", "ﬁ ligature",
    "日本語のテキスト", "中文文本测试", "한국어 문장", "Привет мир", "Ελληνικά", "مرحبا بالعالم", "שלום עולם", "हिन्दी पाठ", "ภาษาไทย",
    "👋", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👍🏽", "🇫🇷🇩🇪", "emoji 😀 in text",
    "\x00", "\x01\x02", "\x07bell", "\x1b[31mred\x1b[0m", "\x7f", "\u200b", "\u00a0nbsp", "\ufeffbom",
    "\U0010ffff", "\ue000", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0001f9ec", "ꙮ",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<bos>text", "text<eos>", "<pad><unk><mask>",
    "<|im_start|>user\nHi<|im_end|>\n", "<|endoftext|>", "[multimodal]", "<start_of_turn", "start_of_turn>",
    "a" * 100, "ab" * 50, " " * 40, "\n" * 40, "=" * 30, "-" * 64, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
]


def tokenize(binary, model, text, special):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as f:
        f.write(text.encode("utf-8", "surrogatepass"))
        f.flush()
        args = [binary, "-m", model, "-f", f.name, "--ids", "--log-disable"]
        if not special:
            args.append("--no-parse-special")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return json.loads(out[-1])


def main():
    binary, model, out = sys.argv[1:4]
    cases = []
    for text in STRINGS:
        for special in (True, False):
            cases.append({"text": text, "special": special, "ids": tokenize(binary, model, text, special)})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"{len(cases)} cases ({len(STRINGS)} strings) -> {out}")


if __name__ == "__main__":
    main()
