#!/usr/bin/env python3
"""Chat-template renderings by Python's Jinja2, configured as Hugging Face transformers
configures it, as test data for Verbatim's Jinja renderer.

Usage: make_template_expectations.py TEMPLATES_DIR SMOLLM2.gguf OUT.json

TEMPLATES_DIR is `models/templates/` of the llama.cpp tree vendored in the PyPI sdist of
llama-cpp-python 0.3.36 (Benchmarks/baseline/build-llama-cpp unpacks it under
.build-llamacpp/cpp/src/vendor/llama.cpp). SMOLLM2.gguf gives SmolLM2's own template
(`tokenizer.chat_template`). Needs PyPI `Jinja2` (3.1.6 made the committed file) and `gguf`.

The environment is transformers' chat-template environment: sandboxed and immutable,
`trim_blocks`, `lstrip_blocks`, loop controls, the `generation` block, a `tojson` filter that
is `json.dumps` with `ensure_ascii=False`, and the globals `raise_exception` and
`strftime_now` (here at a fixed instant, 2026-07-26 09:05:03, so the data is reproducible).
Every template is rendered on every conversation; the output lists, per case, the text or
the error Jinja2 raised.
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2026, 7, 26, 9, 5, 3)
BOS, EOS = "<BOS>", "<EOS>"


class GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers tracks where
    assistant text lies; the text itself is unchanged)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return env


def user(text): return {"role": "user", "content": text}
def assistant(text): return {"role": "assistant", "content": text}
def system(text): return {"role": "system", "content": text}


CONVERSATIONS = [
    ("single user", [user("What is the capital of France?")], True),
    ("system and user", [system("You are a terse assistant."), user("Name three primes.")], True),
    ("multi-turn", [user("Hi!"), assistant("Hello. How can I help?"), user("Tell me a joke."),
                    assistant("Why did the GPU cross the road?"), user("Why?")], True),
    ("no generation prompt", [system("Be brief."), user("2+2?"), assistant("4")], False),
    ("unicode and whitespace", [user("  naïve café 日本語 👨\u200d👩\u200d👧 مرحبا\n\n\tindented\r\nline  "),
                                assistant(" trailing space \n"), user("{{ not a tag }} {% neither %} <|im_end|> <end_of_turn>")], True),
    ("roles that do not alternate", [user("first"), user("second")], True),
    ("assistant first", [assistant("I speak first."), user("ok")], True),
    ("empty content", [user("")], True),
    ("thinking in history", [user("Solve it."), assistant("<think>\nLet me think.\n</think>\n\nThe answer is 4."), user("Thanks")], True),
]


def gguf_chat_template(path):
    import gguf
    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def render(env, source, messages, add_generation_prompt):
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        return {"error": "syntax: " + str(e)}
    try:
        return {"text": template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                        bos_token=BOS, eos_token=EOS)}
    except TemplateError as e:
        return {"error": "raise_exception: " + str(e)}
    except Exception as e:  # what else Jinja2 raises (undefined, type errors, sandbox)
        return {"error": type(e).__name__ + ": " + str(e)}


def main():
    templates_dir, smollm2, out = sys.argv[1:4]
    sources = {"SmolLM2-135M-Instruct (GGUF)": gguf_chat_template(smollm2)}
    for name in sorted(os.listdir(templates_dir)):
        if name.endswith(".jinja"):
            with open(os.path.join(templates_dir, name), encoding="utf-8") as f:
                sources[name[:-len(".jinja")]] = f.read()
    env = environment()
    result = {"jinja2": jinja2.__version__, "bos_token": BOS, "eos_token": EOS, "now": NOW.isoformat(),
              "conversations": [{"name": n, "messages": m, "add_generation_prompt": g} for n, m, g in CONVERSATIONS],
              "templates": []}
    for name, source in sources.items():
        cases = [render(env, source, m, g) for _, m, g in CONVERSATIONS]
        result["templates"].append({"name": name, "source": source, "cases": cases})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    rendered = sum("text" in c for t in result["templates"] for c in t["cases"])
    print(f"{len(sources)} templates, {rendered} renderings, "
          f"{len(sources) * len(CONVERSATIONS) - rendered} errors -> {out}")


if __name__ == "__main__":
    main()
