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

The robustness protocol (method: random with `variants`; docs/study-files.md, "Random search: two stages"):
  variants: {axes, zip, cases} or [cases]  the compared axis (e.g. objective x lens) as a grid
  axes:   {path: prior}                 the sampled knobs: point i (i < num_samples; point 0 = the default
                                        when include_default) is drawn once from sample_seed and applied to
                                        every variant: equal budgets, paired on the hyperparameters.
                                        A prior's `when: {path: [values] | not_null}` applies it only to the
                                        variants that match (it is drawn all the same); `times: path` makes
                                        the draw a factor of that path's value (a ratio prior)
  retrain: {top, seeds, metric, mode}   stage 2: each variant's `top` best points rerun with every seed
Trials of such a study carry `stage` (1 or 2), `sample` (the point index) and `knobs` (the sampled values
that apply to it); none of them is part of the trial id.
"""

from __future__ import annotations

import copy
import json
import itertools
import math
import re
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from bench.metrics import INFO, derived, derived_error, recorded, scale_error
from bench.schema import (NOT_NULL, TRIAL_FIELDS, Dist, Study, Sweep, TrialConfig, config_hash, get_path,
                          variant_label)


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


class _Named:
    def __init__(self, field: str, rest: str):
        self._g = (None, field, rest)

    def group(self, i: int) -> str:
        return self._g[i]


def _named_field(err: dict):
    """A check across sections has no pydantic location and names its field in the message as
    "section.field: ..."; a variant check names a structure option ("w: ..." or "options.w: ..."): the
    match (field, rest) for such an error, else None."""
    loc = _loc(err["loc"])
    if loc:
        m = re.match(r"(?:Value error, )?((?:options\.)?([a-z_][a-z_0-9]*)): (.*)", err["msg"], re.S)
        from bench.schema import _OPTIONS

        named = m and (m.group(2) in _OPTIONS or m.group(1).startswith("options."))
        return _Named(f"{loc}.{m.group(1)}", m.group(3)) if named else None
    return re.match(r"(?:Value error, )?([a-z_]+\.[A-Za-z0-9_.]+): (.*)", err["msg"], re.S)


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


OPTIONS_PREFIX = "variant.options."  # a structure option's sweep path, as the options block writes it


def _option_paths(node):
    """Sweep keys `variant.options.<name>` -> `variant.<name>`: the block is how a study file writes a structure's
    options; the trial config (and its columns) keeps them as variant fields."""
    if isinstance(node, dict):
        return {(k.replace(OPTIONS_PREFIX, "variant.", 1) if isinstance(k, str) else k): _option_paths(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_option_paths(x) for x in node]
    return node


def load_study(path: str | Path, overrides: list[str] = ()) -> Study:
    raw = load_raw(path)
    for o in overrides:
        apply_override(raw, o, file=path)
    if isinstance(raw.get("sweep"), dict):
        raw["sweep"] = _option_paths(raw["sweep"])
    try:
        _check_derived_names(path, raw)
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
    """Does the dot path name a field of TrialConfig (descending into Optional sub-models; a number
    indexes a fixed-length tuple, e.g. train.betas.0)?"""
    model: Any = TrialConfig
    for part in path.split("."):
        if get_origin(model) is tuple:
            args = get_args(model)
            if not (part.isdigit() and int(part) < len(args)) or Ellipsis in args:
                return False
            model = args[int(part)]
            continue
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
    _check_protocol(file, study)
    _check_importance(file, sw)
    # Expand now so that every trial is validated before anything is written.
    trials = expand(study, file=file)
    _check_recorded(file, study, trials)
    _check_data(file, trials)
    if sw.retrain is not None:
        metric, _ = retrain_metric(study)
        if derived(metric) is not None:
            raise StudyError(file, "sweep.retrain.metric", f"'{metric}' is a convergence metric the report computes from "
                                                           "the curves; stage 2 ranks the points by a recorded final "
                                                           "metric: name one here" + ("" if sw.retrain.metric else
                                                                                      " (the question's is derived)"))
        for t in trials:
            have = recorded(t["variant"].get("structure", "gan"), t["dataset"]["name"], t["variant"].get("task"),
                            (t.get("train") or {}).get("ema") is not None)
            if metric not in have:
                raise StudyError(file, "sweep.retrain.metric", f"'{metric}' is not recorded by {t['variant_label']} "
                                                               f"trials on {t['dataset']['name']} (they record {', '.join(have)})")


def _check_data(file, trials: list[dict]) -> None:
    """Every image set the trials train on has its files where the loader looks (or downloads them): a missing set
    is one line naming where the files are expected, before Ray starts and before anything is written."""
    from bench.registry import POINT_DATASETS, TOY_DATASETS

    seen = set()
    for t in trials:
        d = t["dataset"]
        key = json.dumps(d, sort_keys=True)
        if d["name"] in TOY_DATASETS + POINT_DATASETS or key in seen:
            continue
        seen.add(key)
        from bench.data.images import check_files
        from bench.schema import DatasetCfg

        try:
            check_files(DatasetCfg.model_validate(d))
        except FileNotFoundError as e:
            raise StudyError(file, "dataset.name", str(e)) from None


# the paths a variant's label is made of (schema.variant_label): compared, never sampled
LABEL_PATHS = ("variant.objective", "variant.structure", "variant.lens", "variant.lens.schedule", "variant.lens.recon")


def _check_protocol(file, study: Study) -> None:
    """The two-stage random protocol: sweep.variants, conditional and ratio priors, sweep.retrain."""
    named = _check_variants(file, study.sweep)
    _check_priors(file, study.sweep, named)
    _check_retrain(file, study)


def _check_variants(file, sw) -> list[tuple[str, str, list]]:
    """sweep.variants (random only, the compared axis never sampled); returns (field, path, values) of every path the
    variants set ([] without variants)."""
    v = sw.variants
    if v is None:
        return []
    if sw.method != "random":
        raise StudyError(file, "sweep.variants", f"variants are for method: random (this sweep is {sw.method}: "
                                                 "every point of a grid is compared)")
    if sw.zip or sw.cases:
        raise StudyError(file, "sweep.zip" if sw.zip else "sweep.cases",
                         "with sweep.variants, the compared axis's zip and cases go under sweep.variants")
    named = [(f"sweep.variants.axes.{k}", k, vals) for k, vals in v.axes.items()]
    for i, group in enumerate(v.zip):
        lens = {len(x) for x in group.values()}
        if len(lens) > 1:
            raise StudyError(file, f"sweep.variants.zip[{i}]", f"zipped lists differ in length: {sorted(lens)}")
        named += [(f"sweep.variants.zip[{i}].{k}", k, vals) for k, vals in group.items()]
    for i, case in enumerate(v.cases):
        named += [(f"sweep.variants.cases[{i}].{k}", k, x if isinstance(x, list) else [x]) for k, x in case.items()]
    if not named:
        raise StudyError(file, "sweep.variants", "no variants: give the compared axis (axes, zip or cases)")
    for field, path, values in named:
        if not _field_exists(path):
            raise StudyError(file, field, f"'{path}' is not a field of the trial config")
        if not values:
            raise StudyError(file, field, "axis has no values")
    for path in sw.axes:
        if path in LABEL_PATHS:
            raise StudyError(file, f"sweep.axes.{path}", "the compared axis belongs in sweep.variants (sampled, "
                                                        "it would give the variants unequal budgets)")
    return named


def _check_priors(file, sw, named: list) -> None:
    """Conditional (`when`) and ratio (`times`) priors; `named`: the paths the variants set (_check_variants)."""
    for path, prior in sw.axes.items():
        if not isinstance(prior, Dist):
            continue
        for key, what in (("when", "conditional priors"), ("times", "ratio priors")):
            if getattr(prior, key) is not None and sw.variants is None:
                raise StudyError(file, f"sweep.axes.{path}.{key}", f"{what} need sweep.variants (method: random)")
        for wpath, cond in (prior.when or {}).items():
            field = f"sweep.axes.{path}.when.{wpath}"
            if not _field_exists(wpath):
                raise StudyError(file, field, f"'{wpath}' is not a field of the trial config")
            # a sampled path may be named only where the variants set it (e.g. a penalty's weight, on in some variants
            # and sampled around their value): the condition reads each variant's own value, before any draw
            set_by_variants = any(wpath == p or wpath.startswith(p + ".") for _, p, _ in named)
            if wpath in sw.axes and not set_by_variants:
                raise StudyError(file, field, f"'{wpath}' is sampled; a condition names a field the variants "
                                              "(or the base config) set")
            if isinstance(cond, list) and not cond:
                raise StudyError(file, field, f"no values: give a list of values, '{NOT_NULL}' or null")
            if isinstance(cond, str) and cond != NOT_NULL and cond.replace("-", "_").lower() == NOT_NULL:
                raise StudyError(file, field, f"write '{NOT_NULL}'")
        if prior.times is not None:
            field = f"sweep.axes.{path}.times"
            if not _field_exists(prior.times):
                raise StudyError(file, field, f"'{prior.times}' is not a field of the trial config")
            if prior.times == path:
                raise StudyError(file, field, "a prior cannot be a factor of itself")
            other = sw.axes.get(prior.times)
            if isinstance(other, Dist) and other.times is not None:
                raise StudyError(file, field, f"'{prior.times}' is itself a ratio prior")
            if prior.dist == "choice" and not all(isinstance(x, (int, float)) for x in prior.values):
                raise StudyError(file, field, "a ratio prior's values must be numbers")


def _check_retrain(file, study: Study) -> None:
    """sweep.retrain: stage 2 of a random study with variants."""
    sw = study.sweep
    r = sw.retrain
    if r is None:
        return
    if sw.method != "random" or sw.variants is None:
        raise StudyError(file, "sweep.retrain", "a retrain reruns each variant's best sampled points: it needs "
                                                f"method: random with sweep.variants (this study is {sw.method}"
                                                f"{'' if sw.method != 'random' else ' without variants'})")
    if r.top > sw.num_samples:
        raise StudyError(file, "sweep.retrain.top", f"top {r.top} is more than the {sw.num_samples} points sampled "
                                                    "per variant (sweep.num_samples)")
    if not r.seeds:
        raise StudyError(file, "sweep.retrain.seeds", "empty list of seeds")
    dup = sorted({s for s in r.seeds if r.seeds.count(s) > 1})
    if dup:
        raise StudyError(file, "sweep.retrain.seeds", f"seed {dup[0]} is listed twice")
    if sw.seeds is not None and len(sw.seeds) > 1:
        raise StudyError(file, "sweep.seeds", "with sweep.retrain, stage 1 runs one seed per point (the retrain's "
                                              "seeds are sweep.retrain.seeds)")
    if r.metric is None and study.question is None:
        raise StudyError(file, "sweep.retrain.metric", "no metric to rank the points by: name one, or add a "
                                                       "question: block (its metric is the default)")


def _numeric_prior(prior) -> bool:
    if isinstance(prior, Dist):
        return prior.dist != "choice" or all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                             for x in prior.values)
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in prior)


def _check_importance(file, sw: Sweep) -> None:
    """sweep.importance: sampled knobs of a random study with variants, at least 2 of them numeric (fANOVA over one
    knob is that knob's whole variance, a number that says nothing)."""
    if sw.importance is None:
        return
    if sw.method != "random" or sw.variants is None:
        raise StudyError(file, "sweep.importance", "importance is over the knobs a random study with sweep.variants "
                                                   "samples")
    for path in sw.importance:
        if path not in sw.axes:
            raise StudyError(file, "sweep.importance", f"'{path}' is not a sampled knob (sampled: "
                                                       f"{', '.join(sw.axes) or 'none'})")
    numeric = [p for p in sw.importance if _numeric_prior(sw.axes[p])]
    if len(numeric) < 2:
        raise StudyError(file, "sweep.importance", f"fANOVA importance needs at least 2 sampled numeric knobs, not "
                                                   f"{len(numeric)}" + (f" ({', '.join(numeric)})" if numeric else ""))


def _check_question(file, study: Study) -> None:
    q = study.question
    if q is None:
        return
    if not _field_exists(q.compare):
        raise StudyError(file, "question.compare", f"'{q.compare}' is not a field of the trial config")
    if q.statistic == "axis_spread" and not q.axis:
        raise StudyError(file, "question.axis", "statistic axis_spread needs the axis the spread is taken across")
    axes = [q.axis] if isinstance(q.axis, str) else (q.axis or [])
    if isinstance(q.axis, list) and (len(q.axis) != 2 or not q.levels):
        raise StudyError(file, "question.axis", "two axes are one per level: give exactly two, and question.levels")
    for a in axes:
        if not _field_exists(a):
            raise StudyError(file, "question.axis", f"'{a}' is not a field of the trial config")
        if a == q.compare:
            raise StudyError(file, "question.axis", "the axis must differ from question.compare")
    if isinstance(q.scale, dict):
        for m in q.scale:
            if m not in q.metrics:
                raise StudyError(file, f"question.scale.{m}", f"'{m}' is not one of the question's metrics")
    for m in q.metrics:
        why = scale_error(m, q.scale_of(m))
        if why:
            raise StudyError(file, "question.scale" + (f".{m}" if isinstance(q.scale, dict) else ""), why)


def _check_derived_names(file, raw: dict) -> None:
    """A name in the question's metric, co_primary, secondary or scale that is written as a derived convergence
    metric (`<kind>:<metric>`, bench.metrics.derived) names a known kind, a known base metric and a valid fraction;
    checked on the raw file, before the schema, so the error says which part is wrong."""
    q = raw.get("question")
    if not isinstance(q, dict):
        return
    named = [("question.metric", q.get("metric"))]
    named += [(f"question.{k}", m) for k in ("co_primary", "secondary") if isinstance(q.get(k), list) for m in q[k]]
    named += [(f"question.scale.{m}", m) for m in (q["scale"] if isinstance(q.get("scale"), dict) else ())]
    for field, m in named:
        if isinstance(m, str) and ":" in m:
            why = derived_error(m)
            if why:
                raise StudyError(file, field, why)


def _check_recorded(file, study: Study, trials: list[dict]) -> None:
    """Every metric the question names is recorded by every trial (bench.metrics.recorded); a derived convergence
    metric (auc:<m>, steps_to_within:<m>) needs its base metric <m> recorded, in the curves."""
    q = study.question
    if q is None:
        return
    for t in trials:
        have = recorded(t["variant"].get("structure", "gan"), t["dataset"]["name"], t["variant"].get("task"),
                            (t.get("train") or {}).get("ema") is not None)
        for field, ms in (("question.metric", [q.metric]), ("question.co_primary", q.co_primary),
                          ("question.secondary", q.secondary)):
            for m in ms:
                d = derived(m)
                if d is not None and d.base not in have:
                    raise StudyError(file, field, f"'{m}' needs the curve of '{d.base}', which is not recorded by "
                                                  f"{t['variant'].get('structure', 'gan')} trials on "
                                                  f"{t['dataset']['name']} (they record {', '.join(have)})")
                if d is None and m not in have:
                    raise StudyError(file, field, f"'{m}' is not recorded by {t['variant'].get('structure', 'gan')} "
                                                  f"trials on {t['dataset']['name']} (they record {', '.join(have)})")


def set_path(cfg: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        nxt = node[int(p)] if isinstance(node, list) else node.get(p)
        if nxt is None:
            raise KeyError(f"'{'.'.join(parts[:i + 1])}' is null here, so '{path}' cannot be set "
                           "(put this axis in a sweep case that turns it on)")
        node = nxt
    if isinstance(node, list):  # train.betas.0
        node[int(parts[-1])] = copy.deepcopy(value)
    else:
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
    """The study's trials: plain nested dicts with `study`, `trial_id`, `variant_label` and `resources`
    (random studies: stage 1, each also with `stage`, `sample` and `knobs`; with sweep.variants stage 2 is
    `retrain_trials`, known once stage 1 has finished; without, a variant is whatever the label leaves after the
    sampled values, and the cases / zips drawn at random may give variants unequal budgets: use sweep.variants).

    Optuna studies are adaptive, so their trials are not known in advance; expand() returns one
    representative (the default point) per sampled slot, used for counting and validation."""
    sw = study.sweep
    if sw.method == "random" and sw.variants is not None:
        return _expand_variants(study, file)
    if sw.method == "grid":
        points = _grid_points(sw)
    elif sw.method == "random":
        points = _random_points(sw)
    else:
        points = [{}] * sw.num_samples
    seeds = sw.seeds if sw.seeds is not None else [None]
    base = study.base_config()
    trials, seen = [], set()
    for i, point in enumerate(points):
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
            extra = {}
            if sw.method == "random":  # a sampled point, never a grid point: the report's random-search page
                extra = {"variant_label": _label(sw, cfg), "stage": 1, "sample": i,
                         "knobs": {k: v for k, v in point.items() if k in sw.axes}}
            trials.append({**cfg, "study": study.name, "trial_id": h, "variant_label": variant_label(cfg),
                           "resources": study.resources.model_dump(), **extra})
    return trials


# ----------------------------------------------------------------------------- the two-stage random protocol
def variant_points(sw: Sweep) -> list[dict]:
    """The variants' assignments {path: value}, in grid order."""
    v = sw.variants
    return _grid_points(Sweep(axes=v.axes, zip=v.zip, cases=v.cases))


def draws(sw: Sweep) -> list[dict | None]:
    """Point i's draw of every prior ({path: value}; None: the default point), from sample_seed alone:
    every prior is drawn for every point whatever its `when`, so the stream, and the pairing, do not
    depend on the variant."""
    rng = np.random.default_rng(sw.sample_seed)
    out: list[dict | None] = [None] if sw.include_default else []
    while len(out) < sw.num_samples:
        out.append({k: (v.sample(rng) if isinstance(v, Dist) else copy.deepcopy(v[rng.integers(len(v))]))
                    for k, v in sw.axes.items()})
    return out


def _applies(prior, variant_cfg: dict) -> bool:
    return not isinstance(prior, Dist) or prior.applies(variant_cfg)


def knob_name(path: str, prior) -> str:
    """A knob's key in `knobs`: its path, or path/other for a ratio prior (the draw is the ratio)."""
    return f"{path}/{prior.times}" if isinstance(prior, Dist) and prior.times else path


def _within(sw_part: Sweep, point: dict, loc: str, prefix: str) -> str | None:
    """The sweep field under `prefix` that set config path `loc` in `point`, else None."""
    if not any(loc == k or loc.startswith(k + ".") for k in point):
        return None
    field, _ = _sweep_field(sw_part, point, loc)
    return prefix + field[len("sweep."):]


def _variant_error(file, sw: Sweep, vpoint: dict, draw_keys, err: dict, where: str) -> StudyError:
    loc = _err_loc(err)
    keys = [k for k in draw_keys if loc == k or loc.startswith(k + ".")]
    inside = [k for k in draw_keys if k.startswith(loc + ".")]  # e.g. train.betas.0 and .1: the tuple is wrong
    if keys:
        field = f"sweep.axes.{max(keys, key=len)}"
    elif inside:
        field = f"sweep.axes.{inside[0]}" if len(inside) == 1 else f"sweep.axes.{loc}.{{{','.join(k[len(loc) + 1:] for k in inside)}}}"
    else:
        v = sw.variants
        field = _within(Sweep(axes=v.axes, zip=v.zip, cases=v.cases), vpoint, loc, "sweep.variants.") or loc
    return StudyError(file, field, f"{_msg(err)} (in {where})")


def _label(sw: Sweep, cfg: dict) -> str:
    """A variant's label: variant_label of its default config, without the values its priors sample."""
    label = variant_label(cfg)
    lens = cfg["variant"].get("lens")
    if lens:
        if "variant.lens.K" in sw.axes and _applies(sw.axes["variant.lens.K"], cfg):
            label = re.sub(r" K=\d+", "", label)
        if "variant.lens.lam" in sw.axes and _applies(sw.axes["variant.lens.lam"], cfg):
            label = re.sub(r"const [^,)]+", "const", label)
    return label


def _short(v) -> str:
    return "null" if v is None else str(v)


def variant_configs(study: Study, file="study") -> list[tuple[dict, dict, str]]:
    """Every variant as (its assignments, its default trial config, its label); labels are unique."""
    sw = study.sweep
    base = study.base_config()
    out = []
    for vpoint in variant_points(sw):
        cfg = copy.deepcopy(base)
        for path, value in vpoint.items():
            try:
                set_path(cfg, path, value)
            except KeyError as e:
                v = sw.variants
                raise StudyError(file, _within(Sweep(axes=v.axes, zip=v.zip, cases=v.cases), vpoint, path,
                                               "sweep.variants.") or "sweep.variants", e.args[0]) from None
        try:
            cfg = TrialConfig.model_validate(cfg).model_dump(mode="json")
        except ValidationError as e:
            raise _variant_error(file, sw, vpoint, (), e.errors()[0], f"variant {vpoint}") from None
        out.append((vpoint, cfg, _label(sw, cfg)))
    labels = [lab for _, _, lab in out]
    for i, (vpoint, cfg, lab) in enumerate(out):
        if labels.count(lab) > 1:  # e.g. the variants also differ in the dataset: say how
            extra = [f"{k}={_short(x)}" for k, x in vpoint.items() if not k.startswith(LABEL_PATHS)]
            out[i] = (vpoint, cfg, f"{lab} [{', '.join(extra)}]" if extra else lab)
    labels = [lab for _, _, lab in out]
    for lab in labels:
        if labels.count(lab) > 1:
            raise StudyError(file, "sweep.variants", f"two variants are the same configuration ({lab})")
    return out


def _expand_variants(study: Study, file) -> list[dict]:
    sw = study.sweep
    seeds = sw.seeds if sw.seeds is not None else [None]
    points = draws(sw)
    trials, seen = [], set()
    variants = variant_configs(study, file)
    for path, prior in sw.axes.items():
        if isinstance(prior, Dist) and prior.when and not any(prior.applies(c) for _, c, _ in variants):
            raise StudyError(file, f"sweep.axes.{path}.when", "matches no variant (the condition is checked on each "
                                                              "variant's config: base config + its variants entry)")
    for vpoint, vcfg, label in variants:
        applied = {k: p for k, p in sw.axes.items() if _applies(p, vcfg)}
        # ratio priors last: their factor multiplies the value the trial ends up with
        order = sorted(applied, key=lambda k: isinstance(applied[k], Dist) and applied[k].times is not None)
        for i, draw in enumerate(points):
            cfg = copy.deepcopy(vcfg)
            where = f"variant {label}, point {i}"
            for path in order if draw is not None else ():
                value, prior = draw[path], applied[path]
                if isinstance(prior, Dist) and prior.times:
                    other = get_path(cfg, prior.times)
                    if not isinstance(other, (int, float)) or isinstance(other, bool):
                        raise StudyError(file, f"sweep.axes.{path}.times", f"'{prior.times}' is {_short(other)} in "
                                                                           f"{where}: not a number to multiply")
                    value = value * other
                try:
                    set_path(cfg, path, value)
                except KeyError as e:
                    raise StudyError(file, f"sweep.axes.{path}", f"{e.args[0]} (in {where}; a `when` "
                                                                 "condition can limit the prior)") from None
            for seed in seeds:
                c = copy.deepcopy(cfg)
                if seed is not None:
                    c["seed"] = seed
                try:
                    c = TrialConfig.model_validate(c).model_dump(mode="json")
                except ValidationError as e:
                    raise _variant_error(file, sw, vpoint, applied if draw is not None else (), e.errors()[0],
                                         where) from None
                h = config_hash(c)
                if h in seen:  # two points that happen to be equal in this variant: run once
                    continue
                seen.add(h)
                knobs = {}
                for path, prior in applied.items():
                    if draw is not None:
                        knobs[knob_name(path, prior)] = draw[path]
                    elif isinstance(prior, Dist) and prior.times:
                        a, b = get_path(c, path), get_path(c, prior.times)
                        knobs[knob_name(path, prior)] = a / b if isinstance(a, (int, float)) and b else None
                    else:
                        knobs[path] = get_path(c, path)
                trials.append({**c, "study": study.name, "trial_id": h, "variant_label": label, "stage": 1,
                               "sample": i, "knobs": knobs, "resources": study.resources.model_dump()})
    return trials


def retrain_metric(study: Study) -> tuple[str, str]:
    """(metric, mode) that rank the points for stage 2: sweep.retrain's, else the question's metric and its
    better side (bench.metrics.INFO)."""
    r = study.sweep.retrain
    metric = r.metric or study.question.metric
    return metric, r.mode or ("max" if INFO[metric][0] else "min")


def select_retrain(table, top: int, metric: str, mode: str) -> tuple[dict[str, list[int]], list[str]]:
    """Stage 2's points: per variant (first-seen order), the `top` best sample indices by final.<metric>
    among the points that finished ok with a finite value; diverged and failed points rank last and are
    never picked; ties go to the lower sample index. `table` has columns variant, sample, status and
    final.<metric> (one row per stage-1 point). A variant with fewer finished points than `top` retrains
    those it has, and a note says so. Returns ({variant: [sample, ...] best first}, notes)."""
    import pandas as pd  # noqa: F401  (callers pass a DataFrame)

    col = f"final.{metric}"
    chosen, notes = {}, []
    for variant, g in table.groupby("variant", sort=False):
        vals = g[col].astype(float)
        ok = g[(g["status"] == "ok") & vals.map(math.isfinite)]
        ok = ok.assign(_v=ok[col].astype(float)).sort_values(["_v", "sample"], ascending=[mode == "min", True],
                                                           kind="mergesort")
        picked = [int(x) for x in ok["sample"].head(top)]
        chosen[variant] = picked
        if len(picked) < top:
            bad = g["status"].value_counts().drop("ok", errors="ignore").to_dict()
            notes.append(f"{variant}: only {len(ok)} of {len(g)} points finished with a {metric} "
                         f"({', '.join(f'{n} {s}' for s, n in bad.items()) or 'no value'}): retraining "
                         f"{len(picked)} instead of {top}")
    return chosen, notes


def stage1_table(stage1: list[dict], rows, metric: str):
    """One row per stage-1 trial: variant, sample, trial_id, status and final.<metric> from `rows` (the
    trials table); None while a stage-1 trial has no row."""
    import pandas as pd

    col = f"final.{metric}"
    if rows is None or rows.empty:
        return None
    by_id = rows.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    if any(t["trial_id"] not in by_id.index for t in stage1):
        return None
    return pd.DataFrame([{"variant": t["variant_label"], "sample": t["sample"], "trial_id": t["trial_id"],
                          "status": by_id.at[t["trial_id"], "status"],
                          col: by_id.at[t["trial_id"], col] if col in by_id.columns else math.nan}
                         for t in stage1])


def retrain_trials(study: Study, stage1: list[dict], rows) -> tuple[list[dict], list[str]] | None:
    """Stage 2's trials, a function of the stage-1 rows alone (`rows`: the trials table; None while a
    stage-1 trial has no row): each selected point (select_retrain) with every seed of sweep.retrain; a
    seed equal to the point's stage-1 seed is that trial (same id), not a new one. Returns (the new trials,
    notes)."""
    r = study.sweep.retrain
    metric, mode = retrain_metric(study)
    table = stage1_table(stage1, rows, metric)
    if table is None:
        return None
    chosen, notes = select_retrain(table, r.top, metric, mode)
    by_point = {(t["variant_label"], t["sample"]): t for t in stage1}
    seen = {t["trial_id"] for t in stage1}
    out = []
    for variant, samples in chosen.items():
        for i in samples:
            first = by_point[(variant, i)]
            for seed in r.seeds:
                cfg = {k: copy.deepcopy(first[k]) for k in TRIAL_FIELDS}
                cfg["seed"] = seed
                cfg = TrialConfig.model_validate(cfg).model_dump(mode="json")
                h = config_hash(cfg)
                if h in seen:
                    continue
                seen.add(h)
                out.append({**cfg, "study": study.name, "trial_id": h, "variant_label": variant, "stage": 2,
                            "sample": i, "knobs": copy.deepcopy(first["knobs"]),
                            "resources": study.resources.model_dump()})
    return out, notes


def expected_retrain(study: Study, stage1: list[dict]) -> int:
    """Stage 2's trial count when every variant has `top` finished points (its most)."""
    r = study.sweep.retrain
    if r is None:
        return 0
    seed1 = study.sweep.seeds[0] if study.sweep.seeds else study.seed
    n = {}
    for t in stage1:
        n[t["variant_label"]] = n.get(t["variant_label"], 0) + 1
    return sum(min(r.top, k) for k in n.values()) * len(set(r.seeds) - {seed1})
