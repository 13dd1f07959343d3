"""Packs: configurations that train together in one Ray trial, each with its own slice of stacked
parameters (bench.nets.packed), random streams, data order, optimizer state and schedule.

Two configurations can share a pack when they differ only in what does not change the computation's
shape: the seed, loss weights (`variant.w`, `gp_weight`, penalty weights while on in all, lens `lam`, instance
noise's sigma, schedule and K, `code_prior` while on, `lambda_cls`,
`lambda_info`, `age_lambda`, `age_mu`, `ali_dropout`, `lambda_fm`), the lens schedule and K, learning rates, betas, momentum and WGAN's `clip`. Everything else (dataset, networks,
objective, structure, task, steps, batch, evaluation and checkpoint cadence, resources) must be equal,
the optimizer kind too (`train.optimizer`, `d_optimizer`: Adam and SGD are different updates). Settings
that differ inside a pack (learning rates, betas, momentum) cost nothing: each network has one fused
update for the whole pack (bench.optim, bench.structures.PackOptimizer). Configurations with equal
settings still sit next to each other, so a pack cut from a larger group is uniform where it can be (and
then uses torch's own optimizer over the pack).

`sweep.pack`: `off` (one configuration per trial), a number (at most that many per pack), or `auto`:
packs no larger than the structure's network family runs efficiently on its device (AUTO_CAP, measured
with `python -m benchmarks.throughput`), and split so that every trial slot of the cluster has work.
Trial ids, rows and reports do not depend on packing: one row per configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

from bench import catalog, registry

# paths into a trial config that may differ inside a pack
# (a structure's own options declare themselves packable in its DECLARE: bench.catalog)
PACKABLE = (("seed",), ("variant", "gp_weight"), ("variant", "clip"),
            ("variant", "lens", "lam"), ("variant", "lens", "schedule"), ("variant", "lens", "K"),
            ("train", "lr"), ("train", "d_lr"), ("train", "betas"), ("train", "momentum"),
            ("variant", "noise", "sigma"), ("variant", "noise", "schedule"), ("variant", "noise", "K"),
            *(("variant", "penalty", name) for name in registry.REGISTRY["penalty"]),
            *(("variant", name) for name in catalog.packable()))
# options packable only while on in every configuration of the pack or off in all (e.g. code_prior > 0: D_z exists)
WHILE_ON = tuple(name for name, how in catalog.packable().items() if how == "while_on")
# the most configurations per pack under `auto`, by network family and device (benchmarks/throughput.py)
# On this 2-core CPU (docs/scale-and-faults.md, "Packed trials"): a toy MLP configuration-step costs 3.6 ms alone, 2.7-2.9 ms
# in packs of 4-8 and 3.6 ms at 16; a DCGAN (C = 16) one 53 ms alone and more in any pack (grouped
# convolutions are slower than plain ones there), so convolutional networks are not packed on CPUs.
# The GPU caps are not measured yet (no GPU was lent to the session that set them).
AUTO_CAP = {("mlp", "cpu"): 8, ("mlp", "gpu"): 64, ("conv", "cpu"): 1, ("conv", "gpu"): 32}
PACKS = "packs.json"  # in the results folder: which configurations trained together (for resuming)


def compatibility(cfg: dict) -> str:
    """Equal for configurations that can share a pack."""
    c = {k: copy.deepcopy(cfg[k]) for k in ("dataset", "model", "train", "variant", "resources") if k in cfg}
    c["dataset"].pop("data_root", None)
    for name in WHILE_ON:
        c[f"{name}_on"] = (cfg["variant"].get(name) or 0) > 0
    for name in registry.REGISTRY["penalty"]:  # a penalty's weight differs freely in a pack while it is on in all
        c[f"penalty.{name}_on"] = ((cfg["variant"].get("penalty") or {}).get(name) or 0) > 0
    for path in PACKABLE:
        node = c
        for p in path[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(c, sort_keys=True, default=str)


def _optimizer_settings(cfg: dict) -> tuple:
    t = cfg["train"]
    return (t["lr"], t.get("d_lr") or 0.0, tuple(t["betas"]), t["momentum"])


def pack_id(pack: list[dict]) -> str:
    """A pack's name in the storage: its trial id when it is one configuration."""
    ids = [t["trial_id"] for t in pack]
    return ids[0] if len(ids) == 1 else "pack-" + hashlib.sha1(",".join(ids).encode()).hexdigest()[:12]


def auto_cap(cfg: dict) -> int:
    family = "mlp" if cfg["model"]["name"] == "mlp" else "conv"
    device = "gpu" if (cfg.get("resources") or {}).get("gpu", 0) > 0 else "cpu"
    return AUTO_CAP[(family, device)]


def make_packs(trials: list[dict], pack="auto", slots: int = 1) -> list[list[dict]]:
    """Group the trials into packs (see the module docstring); `slots`: trials that can run at once."""
    if pack == "off" or pack == 1 or not trials:
        return [[t] for t in trials]
    groups: dict[str, list[dict]] = {}
    for t in trials:
        groups.setdefault(compatibility(t), []).append(t)
    n_total = len(trials)
    packs = []
    for group in groups.values():
        group = sorted(group, key=lambda t: (_optimizer_settings(t), t["seed"]))
        cap = auto_cap(group[0]) if pack == "auto" else int(pack)
        # enough packs to respect the cap, and (auto) this group's share of the slots
        chunks = math.ceil(len(group) / cap)
        if pack == "auto":
            chunks = max(chunks, min(len(group), math.ceil(slots * len(group) / n_total)))
        size, extra = divmod(len(group), chunks)
        start = 0
        for i in range(chunks):
            end = start + size + (1 if i < extra else 0)
            packs.append(group[start:end])
            start = end
    return packs


def reuse_previous(results_dir: Path, todo: list[dict], every: dict[str, dict], has_checkpoint) -> tuple[list, list]:
    """Packs of an earlier run that can resume from a checkpoint (all their members still in the study,
    one at least unfinished): (those packs with every member's config, the todo trials not in them)."""
    path = Path(results_dir) / PACKS
    if not path.exists():
        return [], todo
    todo_ids = {t["trial_id"] for t in todo}
    kept, taken = [], set()
    for pid, ids in json.loads(path.read_text()).items():
        if len(ids) > 1 and all(i in every for i in ids) and todo_ids & set(ids) and not taken & set(ids) \
                and has_checkpoint(pid):
            kept.append([every[i] for i in ids])
            taken |= set(ids)
    return kept, [t for t in todo if t["trial_id"] not in taken]


def record(results_dir: Path, packs: list[list[dict]]) -> None:
    """Add these packs to the results folder's packs.json (a pack resumes only as the same pack)."""
    from bench.results import write_text

    path = Path(results_dir) / PACKS
    known = json.loads(path.read_text()) if path.exists() else {}
    known.update({pack_id(p): [t["trial_id"] for t in p] for p in packs if len(p) > 1})
    write_text(json.dumps(known, indent=1), path)
