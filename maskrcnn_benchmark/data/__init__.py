"""Data: data sets in their real formats, prompts, transforms, samplers and loaders.

- :mod:`.build` - ``make_data_loader(cfg, is_train, is_distributed, start_iter)`` and ``build_dataset``;
- :mod:`.prompts` - class names -> caption, token spans, positive maps, chunk plans;
- :mod:`.datasets` - COCO / LVIS / ODinW / Objects365 / MDETR (Flickr30k, RefCOCO, mixed) readers;
- :mod:`.transforms`, :mod:`.samplers`, :mod:`.collate_batch`;
- :mod:`.synthetic` - small data sets in every format (``tools/make_synthetic_data.py``);
- :mod:`.check` - ``python -m maskrcnn_benchmark.data.check <name>`` checks a local copy (DATASET.md);
- :mod:`.evaluation` - the evaluators.

Submodules are imported on use, so ``import maskrcnn_benchmark.data`` stays light.
"""
