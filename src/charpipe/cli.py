"""`charpipe run` and `charpipe generate`.

Parameters are checked before Prefect or TensorFlow is imported, so a typo
costs milliseconds and touches nothing on disk.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from charpipe.config import GREEDY, PRESETS, ConfigError, resolve
from charpipe.errors import CharpipeError

# Flags of `run`: (flag, type, help). Each maps to the Config field of the same
# name with dashes as underscores, and to the `train` flow's parameter.
RUN_FLAGS = [
    ("--source", str, "URL, file:// URL or path of the corpus"),
    ("--sha256", str, "expected sha256 of the corpus; a mismatch stops the run"),
    ("--artifacts", str, "artifact root (default: $CHARPIPE_ARTIFACTS or ./artifacts)"),
    ("--decode-errors", str, "'strict' refuses bytes that are not UTF-8 (default); "
     "'replace' reads them as U+FFFD"),
    ("--max-chars", int, "use only the first N characters of the corpus"),
    ("--val-fraction", float, "share of the text held out for validation"),
    ("--test-fraction", float, "share of the text held out for the final test"),
    ("--batch-size", int, "streams per batch (default 32)"),
    ("--n-steps", int, "characters per training window (default 100)"),
    ("--units", int, "GRU units per layer (default 128)"),
    ("--n-layers", int, "number of GRU layers (default 2)"),
    ("--dropout", float, "input dropout of each GRU, in [0, 1) (default 0.2)"),
    ("--recurrent-dropout", float, "recurrent dropout, in [0, 1) (default 0.2)"),
    ("--learning-rate", float, "Adam learning rate (default 0.001)"),
    ("--epochs", int, "training epochs (default 50)"),
    ("--seed", int, "random seed for weights, dropout and sampling (default 42)"),
    ("--prompt", str, "text the samples start from (default 'the ')"),
    ("--sample-length", int, "characters per sample (default 300)"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charpipe", description="Train, convert and sample a stateful char-RNN.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the train flow (embedded Prefect)")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="'smoke': a small configuration for a one-minute check")
    for flag, type_, help_ in RUN_FLAGS:
        run.add_argument(flag, type=type_, help=help_)
    run.add_argument("--temperatures", type=float, nargs="+",
                     help=f"sampling temperatures (default 0.2 0.5 1.0; {GREEDY} = greedy)")
    run.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                     default=None, help="keep the corpus's case")
    run.add_argument("--json", action="store_true",
                     help="print the result as one JSON object on the last line")

    gen = commands.add_parser("generate", help="write text with a trained model")
    gen.add_argument("--model", required=True,
                     help="a model folder written by the convert stage")
    gen.add_argument("--prompt", default="the ")
    gen.add_argument("--length", type=int, default=300)
    gen.add_argument("--temperature", type=float, default=0.5,
                     help=f"> 0, or {GREEDY} for the most likely character")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--drop-unknown", action="store_true",
                     help="leave out prompt characters the model does not know "
                     "(default: refuse them)")
    return parser


def _run(args) -> int:
    overrides = {name: value for name, value in vars(args).items()
                 if name not in ("command", "preset", "json")}
    resolve(args.preset, **overrides)  # refuse bad parameters before importing Prefect

    from flows.train import train

    result = train(preset=args.preset, **overrides)
    _print_summary(result)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


def _print_summary(result: dict) -> None:
    hits = sum(result["cached"].values())
    print(f"\nval_loss {result['val_loss']:.4f} nats/char, "
          f"{result['bits_per_char']:.3f} bits/char; "
          f"{hits}/{len(result['cached'])} stages cached", flush=True)
    for sample in result["samples"]:
        print(f"--- temperature {sample['temperature']}\n"
              f"{sample['prompt']}{sample['text']}", flush=True)
    print(f"--- model: {result['model']}", flush=True)


def _generate(args) -> int:
    if args.length < 0:
        raise ConfigError(f"length: must be 0 or more, got {args.length}")
    if not (args.temperature > 0 or args.temperature == GREEDY):
        raise ConfigError(f"temperature: must be > 0, or {GREEDY} for greedy "
                          f"decoding, got {args.temperature}")
    from charpipe import model, sampling

    net, vocab = model.load_folder(args.model)
    prompt = sampling.usable_prompt(args.prompt, vocab, args.drop_unknown)
    if prompt != args.prompt:
        print(f"charpipe: left out prompt characters outside the vocabulary: "
              f"{sorted(set(args.prompt) - set(vocab))!r}", file=sys.stderr)
    [text] = sampling.complete(net, vocab, prompt, args.length, args.temperature,
                               args.seed)
    print(prompt + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The embedded server's usage heartbeat would call out to Prefect's hosts
    # (and races its own SQLite migration on a first start): off unless asked.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = _parser().parse_args(argv)
    try:
        return _run(args) if args.command == "run" else _generate(args)
    except ConfigError as exc:
        print(f"charpipe: error: {exc}", file=sys.stderr)
        return 2
    except CharpipeError as exc:
        print(f"charpipe: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
