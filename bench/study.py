"""Study files: YAML loading, --set overrides, and the sweep: expansion into plain trial configs.

A study file is a base trial config (dataset, model, train, variant, seed) plus a sweep that says
which fields vary (the models are in bench.schema). Expansion turns it into plain dicts, one per trial,
each validated as a `TrialConfig`; nothing downstream ever sees the YAML.

Sweep grammar (dot paths address fields of the trial config):
  axes:   {path: [v1, v2, ...]}        cartesian product (random/optuna: a list is a choice, or a
                                        {dist: loguniform|uniform|randint|choice, ...} spec)
  zip:    [{path: [...], path2: [...]}] each group pairs its lists element-wise (equal lengths)
  cases:  [{path: value-or-list, ...}]  union of sub-grids; how conditional axes are written,
                                        e.g. a lens K only where the lens is on
  seeds:  [0, 1, 2]                     every point is run once per seed
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from bench.metrics import recorded, scale_error
from bench.schema import Dist, Study, Sweep, TrialConfig, config_hash, variant_label


class StudyError(Exception):
    """Bad input: a one-line message naming the file and the field. The CLI maps it to exit 2."""

    def __init__(self, file: str | Path, field: str, message: str):
        self.file, self.field, self.message = str(file), field, message
        super().__init__(f"{file}: {field}: {message}")


# ----------------------------------------------------------------------------- loading
class _SafeLoader(yaml.SafeLoader):
    """SafeLoader: any tag that would construct a Python object is rejected."""


def _yaml_error(file, e: yaml.YAMLError) -> StudyError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return StudyError(file, where, f"YAML error: {problem}")


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith(("function-", "list[", "Dist")))


def _named_field(err: dict):
    """A check across sections has no pydantic location and names its field in the message as
    "section.field: ..."; the match (field, rest) for such an error, else None."""
    if _loc(err["loc"]):
        return None
    return re.match(r"(?:Value error, )?([a-z_]+\.[a-z_.]+): (.*)", err["msg"], re.S)


def _msg(err: dict) -> str:
    m = _named_field(err)
    if m:
        return m.group(2)
    msg = err["msg"]
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _err_loc(err: dict) -> str:
    m = _named_field(err)
    return m.group(1) if m else _loc(err["loc"])


def load_raw(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, "file", "no such study file")
    try:
        raw = yaml.load(path.read_text(), Loader=_SafeLoader)
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    except UnicodeDecodeError:
        raise StudyError(path, "file", "not a UTF-8 text file") from None
    if not isinstance(raw, dict):
        raise StudyError(path, "document", "a study file must be a YAML mapping")
    return raw


def apply_override(raw: dict, assignment: str, file="--set") -> None:
    """`train.steps=200` -> raw['train']['steps'] = 200. Values are parsed as YAML.
    Under `sweep.axes.` the rest of the path is one axis key (axis keys contain dots)."""
    if "=" not in assignment:
        raise StudyError(file, f"--set {assignment}", "expected key=value")
    key, value = assignment.split("=", 1)
    try:
        value = yaml.load(value, Loader=_SafeLoader)
    except yaml.YAMLError as e:
        raise StudyError(file, f"--set {key}", f"value is not valid YAML: {getattr(e, 'problem', e)}") from None
    parts = key.split(".")
    if parts[:2] == ["sweep", "axes"] and len(parts) > 2:
        parts = ["sweep", "axes", ".".join(parts[2:])]
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p) if isinstance(node, dict) else None
        if nxt is None:
            if isinstance(node, dict) and p not in node:
                node[p] = nxt = {}
            else:
                raise StudyError(file, f"--set {key}", f"cannot set inside {'.'.join(parts[:i + 1])}: it is null")
        if not isinstance(nxt, dict):
            raise StudyError(file, f"--set {key}", f"{'.'.join(parts[:i + 1])} is not a mapping")
        node = nxt
    node[parts[-1]] = value


def _from_override(e: StudyError, overrides) -> StudyError:
    """A bad value that came from --set says so, since the file itself may be fine."""
    for o in overrides:
        key = o.split("=", 1)[0]
        if e.field == key or e.field.startswith(key + ".") or key.startswith(e.field + "."):
            return StudyError(e.file, e.field, f"{e.message} (from --set {o})")
    return e


def load_study(path: str | Path, overrides: list[str] = ()) -> Study:
    raw = load_raw(path)
    for o in overrides:
        apply_override(raw, o, file=path)
    try:
        try:
            study = Study.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise StudyError(path, _err_loc(err) or "document", _msg(err)) from None
        _check_sweep(path, study)
        _check_question(path, study)
    except StudyError as e:
        raise _from_override(e, overrides) from None
    return study


# ----------------------------------------------------------------------------- expansion
def _field_exists(path: str) -> bool:
    """Does the dot path name a field of TrialConfig (descending into Optional sub-models)?"""
    model: Any = TrialConfig
    for part in path.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        ann = model.model_fields[part].annotation
        if get_origin(ann) is Union:  # Optional[Model]
            ann = next((a for a in get_args(ann) if a is not type(None)), ann)
        model = ann
    return True


def _check_sweep(file, study: Study) -> None:
    sw = study.sweep
    named: list[tuple[str, str, Any]] = [(f"sweep.axes.{k}", k, v) for k, v in sw.axes.items()]
    for i, group in enumerate(sw.zip):
        lens = {len(v) for v in group.values()}
        if len(lens) > 1:
            raise StudyError(file, f"sweep.zip[{i}]", f"zipped lists differ in length: {sorted(lens)}")
        named += [(f"sweep.zip[{i}].{k}", k, v) for k, v in group.items()]
    for i, case in enumerate(sw.cases):
        named += [(f"sweep.cases[{i}].{k}", k, v if isinstance(v, list) else [v]) for k, v in case.items()]
    for field, path, values in named:
        if not _field_exists(path):
            raise StudyError(file, field, f"'{path}' is not a field of the trial config")
        if isinstance(values, list) and not values:
            raise StudyError(file, field, "axis has no values")
        if isinstance(values, Dist) and sw.method == "grid":
            raise StudyError(file, field, "a grid axis needs a list of values, not a distribution")
    if sw.seeds is not None and not sw.seeds:
        raise StudyError(file, "sweep.seeds", "empty list of seeds")
    if sw.method == "optuna":
        if sw.zip or sw.cases:
            raise StudyError(file, "sweep.method", "optuna sweeps take axes only (no zip/cases)")
        if not sw.metric or not sw.mode:
            raise StudyError(file, "sweep.metric", "optuna needs sweep.metric and sweep.mode")
        if sw.seeds and len(sw.seeds) > 1:
            raise StudyError(file, "sweep.seeds", "optuna sweeps run one seed per sampled point")
    # Expand now so that every trial is validated before anything is written.
    _check_recorded(file, study, expand(study, file=file))


def _check_question(file, study: Study) -> None:
    q = study.question
    if q is None:
        return
    if not _field_exists(q.compare):
        raise StudyError(file, "question.compare", f"'{q.compare}' is not a field of the trial config")
    if q.statistic == "axis_spread" and not q.axis:
        raise StudyError(file, "question.axis", "statistic axis_spread needs the axis the spread is taken across")
    if q.axis is not None and not _field_exists(q.axis):
        raise StudyError(file, "question.axis", f"'{q.axis}' is not a field of the trial config")
    if q.axis is not None and q.axis == q.compare:
        raise StudyError(file, "question.axis", "the axis must differ from question.compare")
    if isinstance(q.scale, dict):
        for m in q.scale:
            if m not in q.metrics:
                raise StudyError(file, f"question.scale.{m}", f"'{m}' is not one of the question's metrics")
    for m in q.metrics:
        why = scale_error(m, q.scale_of(m))
        if why:
            raise StudyError(file, "question.scale" + (f".{m}" if isinstance(q.scale, dict) else ""), why)


def _check_recorded(file, study: Study, trials: list[dict]) -> None:
    """Every metric the question names is recorded by every trial (bench.metrics.recorded)."""
    q = study.question
    if q is None:
        return
    for t in trials:
        have = recorded(t["variant"].get("structure", "gan"), t["dataset"]["name"], t["variant"].get("task"))
        for field, ms in (("question.metric", [q.metric]), ("question.co_primary", q.co_primary),
                          ("question.secondary", q.secondary)):
            for m in ms:
                if m not in have:
                    raise StudyError(file, field, f"'{m}' is not recorded by {t['variant'].get('structure', 'gan')} "
                                                  f"trials on {t['dataset']['name']} (they record {', '.join(have)})")


def set_path(cfg: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if node.get(p) is None:
            raise KeyError(f"'{'.'.join(parts[:i + 1])}' is null here, so '{path}' cannot be set "
                           "(put this axis in a sweep case that turns it on)")
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)


def _sweep_field(sw: Sweep, point: dict, loc: str) -> tuple[str, str]:
    """(field, detail) for an error at trial-config path `loc` in the trial built from `point`:
    the sweep entry (axes / zip[i] / cases[i] / seeds) that set it, else the base config field."""
    if loc == "seed" and sw.seeds is not None:  # seeds are applied last
        return "sweep.seeds", ""
    keys = [k for k in point if loc == k or loc.startswith(k + ".")]
    if not keys:
        return loc, ""
    k = max(keys, key=len)
    detail = loc[len(k) + 1:]

    def listed(v):
        return v if isinstance(v, list) else [v]

    # later blocks override earlier ones: cases, then zip groups (last first), then axes
    for i, case in enumerate(sw.cases):
        if k in case and all(point.get(ck) in listed(cv) for ck, cv in case.items()):
            return f"sweep.cases[{i}].{k}", detail
    for i in reversed(range(len(sw.zip))):
        if k in sw.zip[i]:
            return f"sweep.zip[{i}].{k}", detail
    if k in sw.axes:
        return f"sweep.axes.{k}", detail
    return f"sweep.{k}", detail


def _product(assignments: list[list[dict]]) -> list[dict]:
    out = []
    for combo in itertools.product(*assignments):
        merged: dict = {}
        for part in combo:
            merged.update(part)
        out.append(merged)
    return out


def _grid_points(sw: Sweep) -> list[dict]:
    blocks = [[{k: v} for v in vals] for k, vals in sw.axes.items()]
    for group in sw.zip:
        keys = list(group)
        blocks.append([dict(zip(keys, vals)) for vals in zip(*group.values())])
    if sw.cases:
        union = []
        for case in sw.cases:
            union += _product([[{k: v} for v in (vals if isinstance(vals, list) else [vals])]
                               for k, vals in case.items()])
        blocks.append(union)
    return _product(blocks)


def _random_points(sw: Sweep) -> list[dict]:
    rng = np.random.default_rng(sw.sample_seed)
    extra = _product([[dict(zip(g, vals)) for vals in zip(*g.values())] for g in sw.zip]
                     + ([_grid_points(Sweep(cases=sw.cases))] if sw.cases else []))
    points = [{}] if sw.include_default else []
    while len(points) < sw.num_samples:
        p = {k: (v.sample(rng) if isinstance(v, Dist) else copy.deepcopy(v[rng.integers(len(v))]))
             for k, v in sw.axes.items()}
        p.update(copy.deepcopy(extra[rng.integers(len(extra))]))
        points.append(p)
    return points


def expand(study: Study, file="study") -> list[dict]:
    """The study's trials: plain nested dicts with `study`, `trial_id`, `variant_label` and `resources`.

    Optuna studies are adaptive, so their trials are not known in advance; expand() returns one
    representative (the default point) per sampled slot, used for counting and validation."""
    sw = study.sweep
    if sw.method == "grid":
        points = _grid_points(sw)
    elif sw.method == "random":
        points = _random_points(sw)
    else:
        points = [{}] * sw.num_samples
    seeds = sw.seeds if sw.seeds is not None else [None]
    base = study.base_config()
    trials, seen = [], set()
    for point in points:
        for seed in seeds:
            cfg = copy.deepcopy(base)
            for path, value in point.items():
                try:
                    set_path(cfg, path, value)
                except KeyError as e:
                    raise StudyError(file, _sweep_field(sw, point, path)[0], e.args[0]) from None
            if seed is not None:
                cfg["seed"] = seed
            try:
                cfg = TrialConfig.model_validate(cfg).model_dump(mode="json")
            except ValidationError as e:
                err = e.errors()[0]
                field, detail = _sweep_field(sw, point, _err_loc(err))
                msg = f"{detail}: {_msg(err)}" if detail else _msg(err)
                raise StudyError(file, field, f"{msg} (in trial {point})") from None
            h = config_hash(cfg)
            if h in seen and sw.method != "optuna":
                continue
            seen.add(h)
            trials.append({**cfg, "study": study.name, "trial_id": h, "variant_label": variant_label(cfg),
                           "resources": study.resources.model_dump()})
    return trials
