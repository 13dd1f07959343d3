"""Study files: pydantic models, YAML loading, --set overrides, expansion into trial configs.

A study file is a base trial config (dataset, model, train, variant, seed) plus a sweep that says
which fields vary. Expansion turns it into plain dicts, one per trial, each validated as a
`TrialConfig`; nothing downstream ever sees the YAML.

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
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench import registry


class StudyError(Exception):
    """Bad input: a one-line message naming the file and the field. The CLI maps it to exit 2."""

    def __init__(self, file: str | Path, field: str, message: str):
        self.file, self.field, self.message = str(file), field, message
        super().__init__(f"{file}: {field}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# ----------------------------------------------------------------------------- trial config
class DatasetCfg(_Strict):
    name: str = "ring8"
    std: float = Field(0.02, gt=0)
    scale: float = Field(2.0, gt=0, description="ring radius / grid spacing of the toy mixtures")
    image_size: int = Field(32, gt=0, description="image sets: height = width after resizing")
    data_root: Optional[str] = Field(None, description="image sets: folder holding the files")
    download: bool = Field(False, description="image sets: let torchvision download missing files")
    base: Literal["fashion_mnist", "mnist", "digits"] = Field("fashion_mnist", description="stacked: base set")
    stack_seed: int = Field(0, ge=0, description="stacked: seed of the channel draws")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return registry.check("dataset", v)


class ModelCfg(_Strict):
    name: str = "mlp"
    width: int = Field(128, gt=0)
    depth: int = Field(2, gt=0)
    z_dim: int = Field(2, gt=0)
    batch_norm: bool = Field(True, description="batch norm in G (DCGAN)")
    d_batch_norm: Optional[bool] = Field(None, description="batch norm in D; default: on, except a WGAN-GP critic")
    init: Literal["default", "xavier", "dcgan"] = Field("default", description="weight init (DCGAN)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return registry.check("network", v)


class TrainCfg(_Strict):
    steps: int = Field(2000, gt=0)
    batch_size: int = Field(256, gt=0)
    eval_every: int = Field(250, gt=0)
    eval_samples: int = Field(2500, gt=0, description="generated samples per evaluation")
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    d_lr: Optional[float] = Field(None, gt=0, description="discriminator lr; defaults to lr")
    d_optimizer: Optional[Literal["adam", "rmsprop", "sgd"]] = Field(
        None, description="discriminator optimizer; defaults to optimizer")
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = Field(0.0, ge=0, lt=1)
    n_critic: int = Field(1, ge=1)
    nrds_samples: int = Field(500, gt=0, description="ED structures: test outputs saved at the end for NRDS")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v):
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class LensCfg(_Strict):
    schedule: Literal["sine", "linear", "constant", "none"] = "sine"
    K: int = Field(1000, gt=0, description="steps until lambda reaches 0 (sine, linear)")
    lam: float = Field(1.0, ge=0, description="lambda at t=0 (the constant value for 'constant')")
    width: Optional[int] = Field(None, gt=0, description="lens MLP width; defaults to model.width")
    depth: Optional[int] = Field(None, gt=0, description="MLP lens layers (default 2) / conv lens residual blocks (default 8)")
    recon: Literal["sum", "mean"] = Field(
        "sum", description="reconstruction term: sum = ||x - L(x)||^2 per sample as in the paper (summed over "
                           "pixels), mean = its mean over pixels (the adversarial term weighs more)")


class VariantCfg(_Strict):
    objective: str = "ns"
    lens: Optional[LensCfg] = None
    clip: float = Field(0.01, gt=0, description="WGAN weight clip")
    gp_weight: float = Field(10.0, ge=0, description="WGAN-GP gradient penalty weight")
    # encoder-decoder structures (Zhang, Song, Qi 2018; bench.structures.edgan)
    structure: Literal["gan", "ed+gan", "ed+gan2", "ed//gan"] = Field(
        "gan", description="gan (G from noise) or an encoder-decoder + GAN structure on a conditional task")
    w: float = Field(1.0, ge=0, description="ED structures: weight of the adversarial loss")
    task: Optional[Literal["inpaint", "downsample", "caae"]] = Field(
        None, description="ED structures: the conditional task (bench.data.tasks)")
    g_res_steps: int = Field(2, ge=1, description="ed//gan: G_res updates per iteration")
    d_cond: bool = Field(True, description="ED structures: D also sees the conditioning (input image / labels)")
    code_prior: float = Field(0.0, ge=0, description=(
        "ED structures: weight of an adversarial loss that pushes E's code towards U(-1, 1) through a code "
        "discriminator D_z (the original CAAE's; it pushes the class out of the code, so the decoder must use "
        "the label); 0 = off"))

    @field_validator("objective")
    @classmethod
    def _known(cls, v: str) -> str:
        return registry.check("objective", v)

    @field_validator("structure")
    @classmethod
    def _known_structure(cls, v: str) -> str:
        return registry.check("structure", v)

    @model_validator(mode="after")
    def _task(self):
        if self.structure != "gan" and self.task is None:
            raise ValueError(f"structure '{self.structure}' needs variant.task (inpaint, downsample or caae)")
        if self.structure == "gan" and self.task is not None:
            raise ValueError(f"variant.task '{self.task}' needs an encoder-decoder structure "
                             "(variant.structure: ed+gan, ed+gan2 or ed//gan)")
        if self.structure != "gan" and self.lens is not None:
            raise ValueError(f"the lens is not implemented for structure '{self.structure}' (set variant.lens: null)")
        return self


class TrialConfig(_Strict):
    dataset: DatasetCfg = DatasetCfg()
    model: ModelCfg = ModelCfg()
    train: TrainCfg = TrainCfg()
    variant: VariantCfg = VariantCfg()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _resolve(self):
        ed = self.variant.structure != "gan"
        if ed != (self.model.name == "encdec"):
            raise ValueError(f"model.name: '{self.model.name}' does not fit variant.structure "
                             f"'{self.variant.structure}': the ED structures need model.name encdec, "
                             "and encdec needs an ED structure")
        if ed and self.dataset.name in ("ring8", "grid25"):
            raise ValueError(f"dataset.name: structure '{self.variant.structure}' needs an image dataset, "
                             f"not {self.dataset.name}")
        if ed and self.variant.task == "caae" and self.dataset.name == "celeba":
            raise ValueError("dataset.name: the caae task needs class labels; celeba is unlabelled here")
        if self.model.d_batch_norm is None:  # WGAN-GP's per-sample gradient penalty and batch norm don't mix
            self.model.d_batch_norm = self.model.batch_norm and self.variant.objective != "wgan-gp"
        return self


TRIAL_FIELDS = tuple(TrialConfig.model_fields)


# ----------------------------------------------------------------------------- study
class Dist(_Strict):
    dist: Literal["loguniform", "uniform", "randint", "choice"]
    low: Optional[float] = None
    high: Optional[float] = None
    values: Optional[list[Any]] = None

    @model_validator(mode="after")
    def _check(self):
        if self.dist == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{self.dist} needs low < high")
            if self.dist == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        return self

    def sample(self, rng: np.random.Generator):
        if self.dist == "choice":
            return copy.deepcopy(self.values[rng.integers(len(self.values))])
        if self.dist == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.dist == "uniform":
            return float(rng.uniform(self.low, self.high))
        return int(rng.integers(int(self.low), int(self.high) + 1))


AxisValues = Union[list[Any], Dist]


class Sweep(_Strict):
    method: Literal["grid", "random", "optuna"] = "grid"
    axes: dict[str, AxisValues] = {}
    zip: list[dict[str, list[Any]]] = []
    cases: list[dict[str, Any]] = []
    seeds: Optional[list[int]] = None
    num_samples: int = Field(1, gt=0, description="random/optuna: points to sample")
    sample_seed: int = Field(0, description="random: RNG seed of the expansion itself")
    include_default: bool = Field(True, description="random: the base config is one of the points")
    metric: Optional[str] = Field(None, description="optuna: metric to optimize (final value)")
    mode: Optional[Literal["min", "max"]] = None


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class NrdsCfg(_Strict):
    """Settings of the study-level NRDS (bench.nrds_step); not part of any trial config or trial id."""
    epochs: int = Field(20, ge=2, description="NRDS classifier epochs (curve points)")
    batch_size: int = Field(64, gt=0, description="NRDS classifier batch (real and fake each)")
    width: float = Field(0.25, gt=0, description="NRDS conv classifier width multiplier")


class Study(TrialConfig):
    name: str
    description: str = ""
    sweep: Sweep = Sweep()
    resources: Resources = Resources()
    nrds: NrdsCfg = NrdsCfg()

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("name must be a slug (letters, digits, _ . -), it names the results folder")
        return v

    def base_config(self) -> dict:
        return self.model_dump(include=set(TRIAL_FIELDS), mode="json")


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
    expand(study, file=file)


def set_path(cfg: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if node.get(p) is None:
            raise KeyError(f"'{'.'.join(parts[:i + 1])}' is null here, so '{path}' cannot be set "
                           "(put this axis in a sweep case that turns it on)")
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)


HASH_EXCLUDED = ("data_root", "download")
# Fields added after studies had been run (paths into the config): left out of the hash while at their
# default, so the trial ids of existing results (and of resumed studies) stay what they were.
HASH_DROPPED_AT_DEFAULT = {("variant", "structure"): "gan", ("variant", "w"): 1.0, ("variant", "task"): None,
                           ("variant", "g_res_steps"): 2, ("variant", "d_cond"): True,
                           ("train", "nrds_samples"): 500, ("train", "d_optimizer"): None,
                           ("variant", "code_prior"): 0.0, ("variant", "lens", "recon"): "sum"}


def config_hash(cfg: dict) -> str:
    canon = trial_config(cfg).model_dump(mode="json")
    for k in HASH_EXCLUDED:  # where the data lives is not what the trial is
        canon["dataset"].pop(k)
    for path, default in HASH_DROPPED_AT_DEFAULT.items():
        parent = canon
        for k in path[:-1]:  # a missing or null section (e.g. no lens) has nothing to drop
            parent = parent.get(k) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent and parent[path[-1]] == default:
            parent.pop(path[-1])
    canon = json.dumps(canon, sort_keys=True)
    return hashlib.sha1(canon.encode()).hexdigest()[:12]


def variant_label(cfg: dict) -> str:
    """A short human name for what distinguishes a variant (objective and lens; for the encoder-decoder
    structures the structure, e.g. "ed//gan", plus the objective when not ns), used in reports. The
    adversarial weight w is not in the name: it is the axis whose sensitivity the ED studies measure,
    so the report treats it as a swept axis of each structure."""
    v = cfg["variant"]
    structure = v.get("structure", "gan")
    if structure != "gan":
        return structure + ("" if v["objective"] == "ns" else f" {v['objective']}")
    label = v["objective"]
    lens = v.get("lens")
    if lens:
        s = lens["schedule"]
        if s == "constant":
            label += f"+lens(const {lens['lam']:g})"
        elif s == "none":
            label += "+lens(lambda=0)"
        else:
            label += f"+lens({s} K={lens['K']})"
        if lens.get("recon", "sum") != "sum":
            label = label[:-1] + f", recon {lens['recon']})"
    return label


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


def trial_config(cfg: dict) -> TrialConfig:
    return TrialConfig.model_validate({k: cfg[k] for k in TRIAL_FIELDS if k in cfg})


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dict -> {'train.lr': ..., 'variant.lens.K': ...}. A null sub-model stays one null column."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(list(v))
        else:
            out[key] = v
    return out


_TEMPLATE = flatten(TrialConfig(variant=VariantCfg(lens=LensCfg())).model_dump(mode="json"))


def flat_config(cfg: dict) -> dict:
    """Every config field as its own column, the same columns for every trial (a trial without a
    lens has null variant.lens.* columns)."""
    flat = flatten({k: cfg[k] for k in TRIAL_FIELDS})
    flat.pop("variant.lens", None)
    return {k: flat.get(k) for k in _TEMPLATE}
