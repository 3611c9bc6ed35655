"""Show and check a merged configuration without building anything.

    python -m maskrcnn_benchmark.config --config-file configs/refcoco.yaml \
        --task_config configs/refexp/_refcoco_testA.yaml TEST.IMS_PER_BATCH 1

prints the keys whose merged value differs from the defaults (``--full`` prints every key), marks keys that
have no effect in this implementation, and runs :func:`validate_config`. Exit status 1 with a one-line message
on a missing file, an unknown key, a bad type or a failed validation.
"""

import argparse
import sys

from maskrcnn_benchmark.config import INERT_KEYS, get_cfg, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskrcnn_benchmark.config", description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", dest="config_file", required=True, help="model config, as for the tools")
    parser.add_argument("--task_config", default="", help="comma-separated task configs merged after it")
    parser.add_argument("--full", action="store_true", help="print every key, not only the changed ones")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, applied last")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    task_configs = [t for t in args.task_config.split(",") if t]
    try:
        merged = load_config(args.config_file, opts=args.opts, task_configs=task_configs)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    defaults = dict(get_cfg().iter_leaves())
    lines = []
    for key, value in merged.iter_leaves():
        changed = key not in defaults or defaults[key] != value
        if args.full or changed:
            note = "  # no effect: " + INERT_KEYS[key] if key in INERT_KEYS and changed else ""
            lines.append(f"{key}: {value!r}{note}")
    sys.stdout.write("\n".join(lines) + "\nconfiguration is valid\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
