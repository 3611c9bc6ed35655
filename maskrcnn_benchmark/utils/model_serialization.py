"""Loading a state dict into a model through an explicit key map, with a grouped, readable report.

``plan_state_dict_load`` works on key -> shape mappings only, so it can be checked against the upstream
key lists in ``shared/fixtures/upstream-state-dict`` without building a 250M-parameter model;
``load_state_dict`` applies a plan to real tensors.

Report categories (each listed separately, grouped by module):

* loaded: file tensors copied into the model;
* resized: ``relative_position_bias_table`` of a different window size, interpolated (bicubic) to ours;
* shape mismatched: never loaded, always reported (a different architecture or width);
* missing: model keys the file does not provide; those that this kind of file never holds (e.g. the
  FPN/DyHead for a coarse-stage file) are listed apart as expected;
* unexpected: file keys no rule maps to a model key; the ones known to be unused for this kind of file
  (e.g. the coarse stage's MLM/ITM heads) are listed apart as expected;
* kept model buffers: architecture-derived index buffers whose values in the file differ from the
  model's (upstream's EMA corrupts them, see upstream-facts.md 2.2); the model's values are kept.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from maskrcnn_benchmark.utils.distributed import unwrap_model
from maskrcnn_benchmark.utils.key_map import (
    DERIVED_BUFFER_PATTERN,
    FILE_KINDS,
    FileKind,
    detect_file_kind,
    map_key,
)

__all__ = [
    "CheckpointMismatchError",
    "LoadReport",
    "group_keys",
    "strip_prefix_if_present",
    "plan_state_dict_load",
    "load_state_dict",
    "resize_relative_position_bias_table",
]

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (raised in strict mode, or when nothing at all matches)."""


def strip_prefix_if_present(state_dict: Mapping[str, object], prefix: str) -> OrderedDict[str, object]:
    """Removes ``prefix`` from every key if ALL keys start with it (DDP's ``module.``), else returns a copy."""
    keys = list(state_dict.keys())
    if not keys or not all(k.startswith(prefix) for k in keys):
        return OrderedDict(state_dict)
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items())


# ---------------------------------------------------------------------------------------------------
# Grouping keys for display
# ---------------------------------------------------------------------------------------------------


def _format_set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{" + ", ".join(items) + "}"


def _sort_token(token: str):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def group_keys(keys: Sequence[str]) -> list[str]:
    """Compresses dotted keys into readable groups.

    Keys sharing a parent module are joined as ``parent.{a, b}``; groups that differ only in one numeric
    index and hold the same leaves are then merged as ``layers.2.blocks.{14, 15}.attn.{weight, bias}``.

    Args:
        keys: dotted state-dict keys.

    Returns:
        Sorted group strings.
    """
    by_parent: dict[str, list[str]] = {}
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        by_parent.setdefault(parent, []).append(leaf)
    groups: list[tuple[list[str], tuple[str, ...]]] = [
        (parent.split(".") if parent else [], tuple(sorted(set(leaves), key=_sort_token)))
        for parent, leaves in by_parent.items()
    ]
    # Each group: a list of tokens (a token may already be a merged "{..}" set) + its leaf set.
    tokens_groups = [([[t] for t in toks], leaves) for toks, leaves in groups]
    changed = True
    while changed:
        changed = False
        buckets: dict[tuple, list[int]] = {}
        for idx, (toks, leaves) in enumerate(tokens_groups):
            for pos, tok in enumerate(toks):
                if not all(t.isdigit() for t in tok):
                    continue
                signature = (pos, len(toks), leaves,
                             tuple(tuple(t) for i, t in enumerate(toks) if i != pos))
                buckets.setdefault(signature, []).append(idx)
        for (pos, _, _, _), members in sorted(buckets.items(), key=lambda kv: -len(kv[1])):
            if len(members) < 2:
                continue
            base_toks, leaves = tokens_groups[members[0]]
            merged = sorted({t for m in members for t in tokens_groups[m][0][pos]}, key=_sort_token)
            new_toks = [list(t) for t in base_toks]
            new_toks[pos] = merged
            keep = [g for i, g in enumerate(tokens_groups) if i not in set(members)]
            tokens_groups = keep + [(new_toks, leaves)]
            changed = True
            break
    out = []
    for toks, leaves in tokens_groups:
        parts = [_format_set(t) for t in toks] + [_format_set(list(leaves))]
        out.append(".".join(parts))
    return sorted(out)


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What happened when a file was loaded into a model.

    Attributes:
        source: the file (or a description of the state dict).
        kind: the file kind's name (``training``, ``coarse``, ``swin``, ``roberta`` or ``unknown``).
        num_model_keys: size of the model's state dict.
        loaded: our keys that received a tensor from the file.
        resized: (our key, file shape, model shape) for interpolated position-bias tables.
        shape_mismatch: (our key, file shape, model shape), not loaded.
        missing: our keys the file lacks, not expected for this kind of file.
        expected_missing: our keys this kind of file never holds.
        unexpected: file keys (as in the file) no rule maps to a model key.
        expected_unused: (file key, reason) pairs known to be unused for this kind of file.
        kept_model_buffers: derived buffers whose file values differ; the model's values are kept.
        renamed: file key -> our key, for keys whose name changed.
    """

    source: str
    kind: str
    num_model_keys: int = 0
    loaded: list[str] = field(default_factory=list)
    resized: list[tuple[str, Shape, Shape]] = field(default_factory=list)
    shape_mismatch: list[tuple[str, Shape, Shape]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    expected_missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    expected_unused: list[tuple[str, str]] = field(default_factory=list)
    kept_model_buffers: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def is_clean(self) -> bool:
        """True when nothing unexpected happened (no real missing / unexpected / mismatched key)."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def hints(self) -> list[str]:
        """Likely causes of a mismatch, in words."""
        out = []
        if any("norm_i2t_i" in k for k in self.unexpected):
            out.append("the file has fusion-v3 keys (norm_i2t_i) the model lacks: the file is from a v3 "
                       "config (refcoco*), set MODEL.BACKBONE.FUSION_VERSION v3")
        if any("norm_i2t_i" in k for k in self.missing):
            out.append("the model is fusion v3 but the file has no norm_i2t_i: the file is from a v2 config, "
                       "set MODEL.BACKBONE.FUSION_VERSION v2")
        if self.shape_mismatch:
            key, fshape, mshape = self.shape_mismatch[0]
            out.append(f"{len(self.shape_mismatch)} tensors differ in shape (e.g. {key}: file {list(fshape)}, "
                       f"model {list(mshape)}): the file was trained with a different config (widths, depths "
                       f"or number of classes)")
        if self.num_model_keys and len(self.loaded) + len(self.resized) == 0:
            out.append("no tensor of the file fits the model: wrong file or wrong config")
        return out

    def format(self, max_groups: int = 40) -> str:
        """The report as a readable, grouped table."""

        def section(title: str, keys: Sequence[str]) -> list[str]:
            if not keys:
                return []
            groups = group_keys(keys)
            lines = [f"  {title} ({len(keys)} keys):"]
            lines += [f"    {g}" for g in groups[:max_groups]]
            if len(groups) > max_groups:
                lines.append(f"    ... and {len(groups) - max_groups} more groups")
            return lines

        n_loaded = len(self.loaded) + len(self.resized)
        lines = [f"{self.source} (kind: {self.kind}): loaded {n_loaded} of {self.num_model_keys} model "
                 f"tensors"]
        if self.shape_mismatch:
            lines.append(f"  shape mismatch, NOT loaded ({len(self.shape_mismatch)} keys):")
            lines += [f"    {k}: file {list(f)} vs model {list(m)}" for k, f, m in self.shape_mismatch]
        if self.resized:
            lines.append(f"  resized (bicubic) ({len(self.resized)} keys):")
            lines += [f"    {k}: file {list(f)} -> model {list(m)}" for k, f, m in self.resized]
        lines += section("missing in the file (model keeps its initial values)", self.missing)
        lines += section("unexpected in the file (ignored)", self.unexpected)
        lines += section("missing, expected for this kind of file", self.expected_missing)
        by_reason: dict[str, list[str]] = {}
        for key, why in self.expected_unused:
            by_reason.setdefault(why, []).append(key)
        for why, keys in by_reason.items():
            lines += section(f"unused, expected ({why})", keys)
        lines += section("derived buffers differing in the file (model values kept)", self.kept_model_buffers)
        for hint in self.hints():
            lines.append(f"  hint: {hint}")
        return "\n".join(lines)

    def raise_if_not_clean(self) -> None:
        """Raises :class:`CheckpointMismatchError` (with the table) unless :attr:`is_clean`."""
        if not self.is_clean:
            raise CheckpointMismatchError(
                "checkpoint does not fit the model (strict mode):\n" + self.format()
            )


# ---------------------------------------------------------------------------------------------------
# Planning (shapes only) and applying
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    report: LoadReport
    #: our key -> (file key, action) with action in {"copy", "resize"}
    assignments: dict[str, tuple[str, str]]


def _resizable(key: str, fshape: Shape, mshape: Shape) -> bool:
    if not key.endswith("relative_position_bias_table"):
        return False
    if len(fshape) != 2 or len(mshape) != 2 or fshape[1] != mshape[1]:
        return False
    f_side, m_side = int(round(fshape[0] ** 0.5)), int(round(mshape[0] ** 0.5))
    return f_side * f_side == fshape[0] and m_side * m_side == mshape[0]


def plan_state_dict_load(
    file_shapes: Mapping[str, Shape],
    model_shapes: Mapping[str, Shape],
    kind: FileKind | None = None,
    source: str = "state dict",
    resize_rel_pos_bias: bool = True,
) -> _Plan:
    """Decides, from key names and shapes alone, what goes where.

    Args:
        file_shapes: file key (already without ``module.``) -> shape.
        model_shapes: our key -> shape (``model.state_dict()``).
        kind: the file kind; detected from the keys when None.
        source: name shown in the report.
        resize_rel_pos_bias: interpolate ``relative_position_bias_table`` of another window size.

    Returns:
        The plan (its ``report`` has everything except the derived-buffer value check).
    """
    if kind is None:
        kind = detect_file_kind(list(file_shapes))
    report = LoadReport(source=source, kind=kind.name if kind else "unknown", num_model_keys=len(model_shapes))
    assignments: dict[str, tuple[str, str]] = {}
    for fkey, fshape in file_shapes.items():
        if kind is None:
            rule, target = None, fkey if fkey in model_shapes else None
        else:
            rule, target = map_key(kind, fkey)
            if rule is not None and target is None:
                report.expected_unused.append((fkey, rule.why))
                continue
        if target is None or target not in model_shapes:
            reason = kind.optional_reason(target) if (kind is not None and target is not None) else None
            if reason is not None:
                report.expected_unused.append((fkey, reason))
            else:
                report.unexpected.append(fkey)
            continue
        if target in assignments:
            raise CheckpointMismatchError(
                f"{source}: file keys {assignments[target][0]!r} and {fkey!r} both map to {target!r}"
            )
        mshape = tuple(model_shapes[target])
        fshape = tuple(fshape)
        if target != fkey:
            report.renamed[fkey] = target
        if fshape == mshape:
            assignments[target] = (fkey, "copy")
            report.loaded.append(target)
        elif resize_rel_pos_bias and _resizable(target, fshape, mshape):
            assignments[target] = (fkey, "resize")
            report.resized.append((target, fshape, mshape))
        elif DERIVED_BUFFER_PATTERN.search(target):
            report.kept_model_buffers.append(target)
        else:
            report.shape_mismatch.append((target, fshape, mshape))
    unmatched = [k for k in model_shapes if k not in assignments and k not in report.kept_model_buffers
                 and not any(k == m for m, _, _ in report.shape_mismatch)]
    for key in unmatched:
        if (kind is not None and kind.is_expected_missing(key)) or (
                kind is None and DERIVED_BUFFER_PATTERN.search(key)):
            report.expected_missing.append(key)
        else:
            report.missing.append(key)
    return _Plan(report=report, assignments=assignments)


def resize_relative_position_bias_table(table: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Bicubic interpolation of a Swin ``[(2W-1)^2, heads]`` table to ``[num_rows, heads]``.

    Args:
        table (Tensor[S*S, heads]): the file's table, S = 2W-1.
        num_rows: the model's S'*S'.

    Returns:
        Tensor[S'*S', heads] in the table's dtype.
    """
    side_in = int(round(table.shape[0] ** 0.5))
    side_out = int(round(num_rows ** 0.5))
    heads = table.shape[1]
    grid = table.float().t().reshape(1, heads, side_in, side_in)
    grid = F.interpolate(grid, size=(side_out, side_out), mode="bicubic", align_corners=False)
    return grid.reshape(heads, side_out * side_out).t().contiguous().to(table.dtype)


def load_state_dict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    kind: str | None = None,
    source: str = "state dict",
    strict: bool = False,
    resize_rel_pos_bias: bool = True,
) -> LoadReport:
    """Loads ``state_dict`` into ``model`` through the explicit key map and logs the report.

    Args:
        model: the target (a DDP wrapper is unwrapped).
        state_dict: file key -> tensor (a leading ``module.`` on all keys is removed).
        kind: force a file kind (``training``, ``coarse``, ``swin``, ``roberta``); detected when None.
        source: name of the file, for the report.
        strict: raise :class:`CheckpointMismatchError` on any missing (beyond the expected ones),
            unexpected or shape-mismatched key, before touching the model.
        resize_rel_pos_bias: interpolate position-bias tables of another window size.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointMismatchError: in strict mode when the file does not fit, and always when not a single
            tensor of the file fits the model.
        ValueError: unknown ``kind``.
    """
    model = unwrap_model(model)
    state_dict = strip_prefix_if_present(state_dict, "module.")
    if kind is not None and kind not in FILE_KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; known: {sorted(FILE_KINDS)}")
    file_kind = FILE_KINDS[kind] if kind is not None else None
    non_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise CheckpointMismatchError(
            f"{source}: entries {non_tensors[:5]} of the state dict are not tensors; is this a state dict?"
        )
    own = model.state_dict()
    plan = plan_state_dict_load(
        {k: tuple(v.shape) for k, v in state_dict.items()},
        {k: tuple(v.shape) for k, v in own.items()},
        kind=file_kind,
        source=source,
        resize_rel_pos_bias=resize_rel_pos_bias,
    )
    report = plan.report
    for target, (fkey, action) in list(plan.assignments.items()):
        if action == "copy" and DERIVED_BUFFER_PATTERN.search(target):
            if not torch.equal(state_dict[fkey].to(own[target].dtype), own[target].cpu()):
                del plan.assignments[target]
                report.loaded.remove(target)
                report.kept_model_buffers.append(target)
    if strict:
        report.raise_if_not_clean()
    if own and not plan.assignments:
        raise CheckpointMismatchError(f"no tensor of {source} fits the model:\n" + report.format())
    with torch.no_grad():
        for target, (fkey, action) in plan.assignments.items():
            value = state_dict[fkey]
            if action == "resize":
                value = resize_relative_position_bias_table(value, own[target].shape[0])
            own[target].copy_(value.to(device=own[target].device, dtype=own[target].dtype))
    level = logging.INFO if report.is_clean else logging.WARNING
    logger.log(level, "%s", report.format())
    return report

