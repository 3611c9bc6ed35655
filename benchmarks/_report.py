"""The common ending of the benchmark scripts: print the JSON report and, with ``--output``, write it there too."""

import json
import sys


def emit(report: dict, output: str | None = None) -> None:
    """Print ``report`` as indented JSON; also write it atomically to ``output`` when given."""
    text = json.dumps(report, indent=2)
    if output:
        from maskrcnn_benchmark.utils.atomic_io import atomic_write_text

        atomic_write_text(output, text + "\n")
    sys.stdout.write(text + "\n")
