"""The command-line tools, as library code: one module per tool, each with ``build_parser()``, ``run(args)``
(the work, for parsed arguments) and ``main(argv=None)`` (parse, run, turn bad input into a one-line error).

=======================  ===============================  ====================================================
console script           upstream-compatible script        module
=======================  ===============================  ====================================================
``fiber-train``          ``python tools/train_net.py``     :mod:`maskrcnn_benchmark.cli.train_net`
``fiber-test``           ``tools/test_grounding_net.py``   :mod:`maskrcnn_benchmark.cli.test_grounding_net`
``fiber-finetune``       ``tools/finetune.py``             :mod:`maskrcnn_benchmark.cli.finetune`
``fiber-demo``           ``tools/demo.py``                 :mod:`maskrcnn_benchmark.cli.demo`
=======================  ===============================  ====================================================

The console scripts are installed by ``pip install .``; the scripts in ``tools/`` call the same ``main`` and
take the same flags (upstream's), so upstream's README commands keep working from a checkout.
"""

#: console script name -> "module:function", as declared in setup.py's entry points.
CONSOLE_SCRIPTS = {
    "fiber-train": "maskrcnn_benchmark.cli.train_net:main",
    "fiber-test": "maskrcnn_benchmark.cli.test_grounding_net:main",
    "fiber-finetune": "maskrcnn_benchmark.cli.finetune:main",
    "fiber-demo": "maskrcnn_benchmark.cli.demo:main",
}
