#!/usr/bin/env python3
"""Regenerate host/src/pricing/prices.json from LiteLLM's model price list.

The gateway ships a small subset of LiteLLM's `model_prices_and_context_window.json`
(MIT licence, https://github.com/BerriAI/litellm), converted to USD per million
tokens. Get the file from the `litellm` wheel:

    pip download litellm --no-deps -d /tmp/litellm
    cd /tmp/litellm && unzip -o litellm-*.whl 'litellm/model_prices_and_context_window_backup.json'
    python3 scripts/update_pricing.py /tmp/litellm/litellm/model_prices_and_context_window_backup.json

The litellm version is read from the wheel's name when the JSON sits in an unpacked
wheel next to it; pass --version to give it explicitly. Standard library only.
"""

import argparse
import json
import pathlib
import re
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "host/src/pricing/prices.json"

# Chat models billed by OpenAI itself (bare names, as clients send them).
OPENAI = re.compile(r"^(gpt-3\.5-turbo|gpt-4|gpt-4-turbo|gpt-4o|gpt-4\.1|gpt-5|gpt-6|o1|o3|o4)([-.].*)?$")
# Variants whose bill is dominated by prices this table does not model.
OPENAI_SKIP = re.compile(r"audio|realtime|search|transcribe|tts")

# Hosts of open-weight models, as LiteLLM prefixes them; the prefix stays in the key.
OPEN_HOSTS = ("cerebras/", "deepinfra/", "deepseek/", "groq/", "mistral/", "together_ai/")
OPEN_FAMILIES = re.compile(
    r"llama-?3|llama-4|mistral|mixtral|ministral|codestral|devstral|magistral|pixtral"
    r"|qwen|qwq|deepseek|gemma|gpt-oss",
    re.I,
)
# Safety classifiers are billed per call in practice, and code-llama / llama-2 are
# not the Llama 3.x family the list asks for.
OPEN_SKIP = re.compile(r"guard|safeguard|codellama|code-llama|llama-2", re.I)

# Claude models Anthropic has retired: LiteLLM no longer lists them under the
# `anthropic` provider, only as Bedrock model ids, which LiteLLM prices at Anthropic's
# list price. Each Anthropic API name maps to the Bedrock entry it is priced from; the
# undated name is added too, so `-latest` and other dates resolve after normalisation.
RETIRED_CLAUDE = {
    "claude-3-opus-20240229": "anthropic.claude-3-opus-20240229-v1:0",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-5-sonnet-20240620": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-7-sonnet-20250219": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "claude-sonnet-4-20250514": "anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-opus-4-20250514": "anthropic.claude-opus-4-20250514-v1:0",
    "claude-opus-4-1-20250805": "anthropic.claude-opus-4-1-20250805-v1:0",
}

DATE = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


def per_mtok(cost_per_token):
    """USD per token -> USD per million tokens, at 6 significant digits."""
    value = float(f"{float(cost_per_token) * 1e6:.6g}")
    return int(value) if value.is_integer() else value


def price(entry):
    """The four prices of a LiteLLM entry, or None when it lacks token prices."""
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not isinstance(inp, (int, float)) or not isinstance(out, (int, float)):
        return None
    read = entry.get("cache_read_input_token_cost")
    write = entry.get("cache_creation_input_token_cost")
    p = {
        "input": per_mtok(inp),
        "output": per_mtok(out),
        "cache_read": per_mtok(read if isinstance(read, (int, float)) else inp),
        "cache_write": per_mtok(write if isinstance(write, (int, float)) else inp),
    }
    if any(v < 0 for v in p.values()):
        return None
    return p


def is_chat(entry):
    return isinstance(entry, dict) and entry.get("mode") == "chat"


def select(data):
    table = {}
    for key, entry in data.items():
        if not is_chat(entry):
            continue
        provider = entry.get("litellm_provider")
        keep = (
            (provider == "anthropic" and key.startswith("claude-"))
            or (provider == "openai" and OPENAI.match(key) and not OPENAI_SKIP.search(key))
            or (
                key.startswith(OPEN_HOSTS)
                and OPEN_FAMILIES.search(key.split("/", 1)[1])
                and not OPEN_SKIP.search(key)
            )
        )
        if keep and (p := price(entry)):
            table[key] = p

    for name, bedrock_id in RETIRED_CLAUDE.items():
        entry = data.get(bedrock_id)
        if name in table or not is_chat(entry) or not (p := price(entry)):
            print(f"note: no price for retired {name} ({bedrock_id})", file=sys.stderr)
            continue
        table[name] = p
        table.setdefault(DATE.sub("", name), p)

    # LiteLLM's `-latest` aliases (`claude-sonnet-latest`) for models already kept.
    for key, entry in data.items():
        target = entry.get("alias_of") if isinstance(entry, dict) else None
        if target in table and key not in table:
            table[key] = table[target]
    return table


def wheel_version(path):
    """The litellm version from a `litellm-<version>-*.whl` next to the unpacked file."""
    for parent in path.resolve().parents:
        for wheel in sorted(parent.glob("litellm-*.whl")):
            return wheel.name.split("-")[1]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=pathlib.Path, help="LiteLLM model_prices_and_context_window JSON")
    ap.add_argument("--version", help="litellm version the file came from")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()

    version = args.version or wheel_version(args.source)
    if not version:
        sys.exit("cannot tell the litellm version; pass --version")
    table = select(json.loads(args.source.read_text(encoding="utf-8")))

    source = (
        f"LiteLLM model_prices_and_context_window.json from litellm {version} "
        "(https://github.com/BerriAI/litellm, MIT licence, Copyright (c) 2023 Berri AI); "
        "USD per million tokens; subset chosen by scripts/update_pricing.py; retired Claude "
        "models priced from LiteLLM's Bedrock entries"
    )
    # One entry per line: compact, yet a price change is a one-line diff.
    lines = [f'"_source":{json.dumps(source)}']
    for key in sorted(table):
        lines.append(f"{json.dumps(key)}:{json.dumps(table[key], separators=(',', ':'))}")
    args.out.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {len(table)} prices to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
