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


# The renderer's pieces, one construct per case, on one fixed context.
UNIT_CONTEXT = {"s": "  Hello World  ", "n": 7, "x": 2.5, "d": {"b": 2, "a": 1, "c": None},
                "items": [{"name": "x", "type": "function", "n": 3}, {"name": "y", "type": "other", "n": 1},
                          {"name": "z", "type": "function", "n": 2}],
                "words": ["b", "A", "c", "a"], "empty": [], "nothing": None, "flag": True, "text": "a\nb\n\nc"}
UNITS = [
    # lexer: whitespace control, trim_blocks, lstrip_blocks, comments, raw, newlines
    "a {{- ' b ' -}} c", "a\n  {% if true %}\n  x\n  {% endif %}\nb", "a {%- if true %} b {% endif -%} c",
    "a {%+ if true %}b{% endif +%}\nc", "x\n{# comment #}\ny", "  {# c #}  z", "{% raw %}{{ not }} {% rendered %}{% endraw %}!",
    "line1\r\nline2\rline3\n", "{{ 'keep' }}\n\n", "{% if true %}  \n{% endif %}x", "\t{% if true %}y{% endif %}",
    "{{ '\\n\\t\\u00e9\\x41' }}|{{ \"it's\" }}|{{ 'a' 'b' }}",
    # expressions: arithmetic, comparison, logic, precedence
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 / 3 }}",
    "{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ -0.0 }} {{ 3.0 }} {{ 2 ** -1 }}",
    "{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'x' + 'y' }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }} {{ not flag }}",
    "{{ nothing or 'default' }} {{ 0 and 1 }} {{ 'x' if n > 5 else 'y' }} {{ 'z' if false }}|",
    "{{ [1, 'a', none, true, 2.5, ('t',), {'k': [1]}] }} {{ (1, 2) }} {{ {'a': 'b'} }} {{ \"q'\" }} {{ ['q\"', \"q'\"] }}",
    "{{ s[2:7] }} {{ s[::-1] }} {{ words[-1] }} {{ words[1:] }} {{ words[:-1] }} {{ words[::2] }} {{ s[100] }}|{{ words[5] }}|",
    "{{ d.a }} {{ d['b'] }} {{ d.missing }}|{{ d.c }} {{ items[0].name }} {{ items.0.type }}",
    # statements
    "{% for w in words %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ w }};{% endfor %}",
    "{% for w in words if w != 'c' %}{{ loop.index }}{{ w }}{% else %}none{% endfor %}|{% for w in empty %}x{% else %}empty{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %} {% for k in d %}{{ k }}{% endfor %}",
    "{% for w in words %}{% if w == 'c' %}{% break %}{% endif %}{{ w }}{% endfor %} {% for w in words %}{% if w == 'A' %}{% continue %}{% endif %}{{ w }}{% endfor %}",
    "{% for w in words %}{{ loop.cycle('odd', 'even') }}{{ loop.previtem|default('^') }}{{ loop.nextitem|default('$') }} {% endfor %}",
    "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }};{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, seen=[]) %}{% for i in items %}{% set ns.total = ns.total + i.n %}{% endfor %}{{ ns.total }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set block %}inside {{ n }}{% endset %}[{{ block }}] {% set up | upper %}shout{% endset %}{{ up }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}",
    "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}body {{ n }}{% endcall %}",
    "{% macro m() %}{{ late }}{% endmacro %}{% set late = 'seen' %}{{ m() }}",
    "{% filter upper %}quiet {{ n }}{% endfilter %} {% with q = 5 %}{{ q }}{% endwith %}{{ q }}|",
    "{% if n > 10 %}big{% elif n > 5 %}medium{% else %}small{% endif %}",
    "{% generation %}assistant text{% endgeneration %}",
    # tests
    "{{ s is string }} {{ n is number }} {{ n is integer }} {{ x is float }} {{ flag is boolean }} {{ d is mapping }} {{ words is sequence }} {{ words is iterable }}",
    "{{ undefined_thing is defined }} {{ nothing is none }} {{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ n is not none }} {{ s is not mapping }}",
    "{{ 'a' is in 'abc' }} {{ n is eq 7 }} {{ n is equalto 7 }} {{ n is gt 3 }} {{ n is lt 3 }} {{ n is ge 7 }} {{ true is sameas true }} {{ 'ab' is lower }} {{ 'AB' is upper }}",
    # filters
    "[{{ s|trim }}] [{{ 'xxhixx'|trim('x') }}] {{ s|length }} {{ words|length }} {{ d|count }} {{ s|upper }} {{ s|lower }} {{ 'hello world'|capitalize }} {{ 'hello wORLD'|title }}",
    "{{ s|replace('l', 'L') }} {{ s|replace('l', 'L', 1) }} {{ missing|default('dflt') }} {{ ''|default('e', true) }} {{ nothing|default('kept') }} {{ missing|d('d') }}",
    "{{ words|join(', ') }} {{ items|join('/', attribute='name') }} {{ words|first }} {{ words|last }} {{ 'abc'|list }} {{ n|string }} {{ '42'|int + 1 }} {{ '3.5'|float }} {{ 'x'|int }} {{ -3|abs }}",
    "{{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') }} {{ d|items|list }} {{ d|dictsort }} {{ words|sort }} {{ words|sort(reverse=true) }} {{ words|sort(case_sensitive=true) }}",
    "{{ items|selectattr('type', 'equalto', 'function')|map(attribute='name')|list }} {{ items|rejectattr('type', 'equalto', 'function')|list|length }} {{ [0, 1, 2, none]|select|list }} {{ [1, 2, 3, 4]|reject('odd')|list }}",
    "{{ words|map('upper')|list }} {{ ['a', 'A', 'b']|unique|list }} {{ words|reverse|list }} {{ 'abc'|reverse }} {{ [1, 2, 3]|sum }} {{ items|sum(attribute='n') }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }}",
    "{{ text|indent(2) }}|{{ text|indent(2, true) }}|{{ text|indent('> ', first=true, blank=true) }}",
    "{{ '%s is %d (%.2f) %5s|%-5s|%05d %x %%'|format('n', n, x, 'r', 'l', 42, 255) }} {{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }} {{ 'a<b & \"c\"'|escape }}",
    "{{ d|tojson }} {{ items[0]|tojson(indent=2) }} {{ 'é \"q\" \\ \n \u0001'|tojson }} {{ [1.0, 2.5, 1e20, none, true]|tojson }} {{ {}|tojson }} {{ [[]]|tojson(indent=2) }}",
    "{{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',', ':')) }} {{ 'x'|safe }} {{ 'one two  three'|wordcount }}",
    # methods
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ s.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}",
    "{{ s.startswith('  He') }} {{ s.endswith(('x', '  ')) }} {{ s.upper() }} {{ s.lower() }} {{ s.replace('o', '0') }} {{ s.find('World') }} {{ s.rfind('l') }} {{ s.count('l') }} {{ '-'.join(words) }}",
    "{{ 'a{}b{}'.format(1, 'x') }} {{ '{0}{0}{1}'.format('p', 'q') }} {{ '{name}!'.format(name='N') }} {{ 'x\ny\r\nz'.splitlines() }} {{ 'Title case words'.title() }} {{ 'lower'.capitalize() }}",
    "{{ d.get('a') }} {{ d.get('zz', 'none') }} {{ d.get('zz') }} {{ d.keys()|list }} {{ d.values()|list }} {{ words.index('c') }} {{ words.count('a') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ '  '.isspace() }}",
    "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b=2) }} {{ namespace(a=1).a }}",
    # errors Jinja2 raises too
    "{{ undefined_thing.attr }}", "{{ 1 + 'a' }}", "{{ raise_exception('custom failure') }}", "{{ words.append(1) }}",
    "{{ 'a' < 1 }}", "{{ n() }}", "{{ 1 / 0 }}", "{% for x in n %}{% endfor %}", "{{ undefined_thing + 1 }}", "{{ d|unknownfilter }}",
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
    result["unit_context"] = UNIT_CONTEXT
    result["units"] = []
    for source in UNITS:
        try:
            case = {"text": env.from_string(source).render(**UNIT_CONTEXT)}
        except TemplateError as e:
            case = {"error": "raise_exception: " + str(e)}
        except Exception as e:
            case = {"error": type(e).__name__ + ": " + str(e)}
        result["units"].append({"source": source, **case})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    rendered = sum("text" in c for t in result["templates"] for c in t["cases"])
    print(f"{len(sources)} templates, {rendered} renderings, "
          f"{len(sources) * len(CONVERSATIONS) - rendered} errors -> {out}")


if __name__ == "__main__":
    main()
