"""The schema: pydantic models of a trial configuration and of a study file, and what is derived from
one configuration alone (its id, its label, its flat columns). Names that pick an implementation
(dataset, network, structure, objective, schedule, optimizer, task, init) are checked against
bench.registry, so the schema never lists them itself; what a structure supports is its own `check`.

A study file is a base trial config (dataset, model, train, variant, seed) plus a sweep that says
which fields vary; bench.study loads it and expands it into plain trial configs.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal, Optional

import numpy as np
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr, ValidationError,
                      field_validator, model_validator)

from bench import registry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def Name(kind: str):
    """A str field that must be a name registered under `kind` in bench.registry."""
    return Annotated[str, AfterValidator(lambda v: registry.check(kind, v))]


# ----------------------------------------------------------------------------- trial config
class DatasetCfg(_Strict):
    name: Name("dataset") = "ring8"
    std: float = Field(0.02, gt=0)
    scale: float = Field(2.0, gt=0, description="ring radius / grid spacing of the toy mixtures")
    image_size: int = Field(32, gt=0, description="image sets: height = width after resizing")
    data_root: Optional[str] = Field(None, description="image sets: folder holding the files")
    download: bool = Field(False, description="image sets: let torchvision download missing files")
    base: str = Field("fashion_mnist", description="stacked: the single-channel image set of each channel")
    stack_seed: int = Field(0, ge=0, description="stacked: seed of the channel draws; domains: of the split")
    vocab: int = Field(5000, gt=0, description="oracle: the vocabulary's size (SeqGAN's synthetic task: 5000)")
    seq_len: int = Field(20, gt=0, description="oracle: the sequences' length (20)")
    transform: str = Field("invert", description=(
        "domains: the transform T of domain B (invert, rot90; bench.data.domains)"))

    @field_validator("base")
    @classmethod
    def _base(cls, v: str) -> str:
        if registry.check("dataset", v) not in registry.GREY_DATASETS:
            raise ValueError(f"'{v}' cannot be stacked: the base must be a single-channel image set "
                             f"({', '.join(registry.GREY_DATASETS)})")
        return v

    @field_validator("transform")
    @classmethod
    def _transform(cls, v: str) -> str:
        if v not in registry.DOMAIN_TRANSFORMS:
            raise ValueError(f"unknown transform '{v}' (known: {', '.join(registry.DOMAIN_TRANSFORMS)})")
        return v


class ModelCfg(_Strict):
    name: Name("network") = "mlp"
    width: int = Field(128, gt=0)
    depth: int = Field(2, gt=0)
    z_dim: int = Field(2, gt=0)
    batch_norm: bool = Field(True, description="batch norm in G (DCGAN)")
    d_batch_norm: Optional[bool] = Field(None, description="batch norm in D; default: on, except a WGAN-GP critic")
    init: Name("init") = Field("default", description="weight init of the convolutional networks")
    d_norm: Optional[Literal["none", "batch", "layer", "spectral"]] = Field(None, description=(
        "normalization of D's hidden layers (MLP and DCGAN nets): none, batch, layer, or spectral (each weight divided "
        "by its largest singular value, one power iteration per step per configuration); default: d_batch_norm decides"))


class TrainCfg(_Strict):
    steps: int = Field(2000, gt=0)
    batch_size: int = Field(256, gt=0)
    eval_every: int = Field(250, gt=0)
    eval_samples: int = Field(2500, gt=0, description="generated samples per evaluation")
    optimizer: Name("optimizer") = "adam"
    lr: float = Field(1e-3, gt=0)
    d_lr: Optional[float] = Field(None, gt=0, description="discriminator lr; defaults to lr")
    d_optimizer: Optional[Name("optimizer")] = Field(None, description="discriminator optimizer; defaults to optimizer")
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = Field(0.0, ge=0, lt=1)
    n_critic: int = Field(1, ge=1)
    nrds_samples: int = Field(500, gt=0, description="ED structures: test outputs saved at the end for NRDS")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the training step to bfloat16")
    updates: Literal["alternating", "simultaneous"] = Field("alternating", description=(
        "alternating: D steps, then G steps on D's new weights; simultaneous: D's last step and G's step take their "
        "gradients at the same point (Mescheder et al. 2018's simultaneous gradient descent)"))
    ema: Optional[float] = Field(None, gt=0, lt=1, description=(
        "generator weight averaging (Yazici et al. 2019): G_ema <- ema * G_ema + (1 - ema) * G after every step; "
        "every evaluation also scores G_ema (columns <metric>_ema in the same row)"))
    checkpoint_every: int = Field(1000, gt=0, description=(
        "steps between checkpoints (taken at the next evaluation); how a trial is run, not what it is: "
        "not part of the trial id"))

    @field_validator("betas")
    @classmethod
    def _betas(cls, v):
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class LensCfg(_Strict):
    schedule: Name("schedule") = "sine"
    K: int = Field(1000, gt=0, description="steps until lambda reaches 0 (sine, linear)")
    lam: float = Field(1.0, ge=0, description="lambda at t=0 (the constant value for 'constant')")
    width: Optional[int] = Field(None, gt=0, description="lens MLP width; defaults to model.width")
    depth: Optional[int] = Field(None, gt=0, description="MLP lens layers (default 2) / conv lens residual blocks (default 8)")
    recon: Literal["sum", "mean"] = Field(
        "sum", description="reconstruction term: sum = ||x - L(x)||^2 per sample as in the paper (summed over "
                           "pixels), mean = its mean over pixels (the adversarial term weighs more)")


def _penalty_model():
    """PenaltyCfg: one weight per registered penalty (bench.penalties), 0 = off; several may combine."""
    from pydantic import create_model

    docs = {"gp": "two-sided gradient penalty on interpolates of real and fake (Gulrajani et al. 2017)",
            "dragan": "two-sided gradient penalty around perturbed real data (Kodali et al. 2017)",
            "r1": "gamma of (gamma/2) E||grad D(x)||^2 on real data (Mescheder et al. 2018)",
            "r2": "gamma of (gamma/2) E||grad D(G(z))||^2 on fake data (Mescheder et al. 2018)",
            "consensus": "gamma of (gamma/2) ||v||^2, v both players' gradient field, added to both losses "
                         "(Mescheder et al. 2017; needs train.updates: simultaneous)"}
    return create_model("PenaltyCfg", __base__=_Strict, **{
        name: (float, Field(0.0, ge=0, description=docs.get(name, f"weight of penalty {name}")))
        for name in registry.REGISTRY["penalty"]})


PenaltyCfg = _penalty_model()


class NoiseCfg(_Strict):
    """Instance noise (Sonderby et al. 2017; Arjovsky & Bottou 2017): Gaussian noise on D's inputs, real and
    fake, its standard deviation annealed by a lens schedule: sigma(t) = schedule(t, K, sigma)."""
    sigma: float = Field(0.1, ge=0, description="the noise's standard deviation at t = 0")
    schedule: Name("schedule") = Field("linear", description="how sigma anneals to 0 (bench.schedules, as the lens)")
    K: int = Field(1000, gt=0, description="steps until sigma reaches 0 (sine, linear)")


class _VariantBase(_Strict):
    structure: Name("structure") = Field("gan", description="the training structure (bench.structures): gan (G from noise, "
                                              "optionally with the lens) or an encoder-decoder + GAN structure")
    objective: Name("objective") = "ns"
    lens: Optional[LensCfg] = None
    clip: float = Field(0.01, gt=0, description="WGAN weight clip")
    gp_weight: float = Field(10.0, ge=0, description="WGAN-GP gradient penalty weight")
    penalty: PenaltyCfg = Field(PenaltyCfg(), description="penalties on D (or both players: consensus), by weight")
    noise: Optional[NoiseCfg] = Field(None, description="instance noise on D's inputs")

    @model_validator(mode="before")
    @classmethod
    def _options_block(cls, v):
        """`options: {name: value}`: the structure's own options as a block (the same fields as written flat)."""
        if isinstance(v, dict) and "options" in v:
            v = dict(v)
            block = v.pop("options") or {}
            if not isinstance(block, dict):
                raise ValueError("options: a mapping of the structure's options {name: value}")
            twice = sorted(set(block) & set(v))
            if twice:
                raise ValueError(f"options.{twice[0]}: given both in the options block and beside it")
            structure = v.get("structure", "gan")
            for k in block:
                if k not in _OPTIONS:
                    raise ValueError(f"options.{k}: not an option of any structure{_own_words(structure)}")
            v.update(block)
        return v

    @model_validator(mode="after")
    def _owned(self):
        """An option of another structure, set away from its default, is an error (it would change the trial id
        and nothing else)."""
        from bench import catalog

        mine = catalog.structure(self.structure).options
        for name, opt in _OPTIONS.items():
            if name not in mine and getattr(self, name) != opt.default:
                raise ValueError(f"{name}: not an option of structure '{self.structure}' (it belongs to "
                                 f"{', '.join(catalog.owners(name))}){_own_words(self.structure)}")
        return self


def _own_words(structure: str) -> str:
    from bench import catalog

    try:
        mine = list(catalog.structure(structure).options)
    except ValueError:
        return ""
    return f"; {structure}'s options: {', '.join(mine)}" if mine else f"; {structure} has no options of its own"


def _option_field(o):
    """A catalog option (bench.catalog.Option) as a pydantic field."""
    kind = {"float": float, "int": int, "bool": bool, "str": str}.get(o.type)
    ann = Optional[Name("task")] if o.type == "task" else (Optional[kind] if o.default is None else kind)
    return ann, Field(o.default, description=o.doc, **o.bounds)


def _variant_model():
    """VariantCfg: the shared fields above plus every structure option the catalog declares (bench.catalog: each
    structure module's DECLARE), so adding a structure never edits this file."""
    from pydantic import create_model

    from bench import catalog

    return create_model("VariantCfg", __base__=_VariantBase,
                        **{name: _option_field(o) for name, o in catalog.options().items()})


def _catalog_options():
    from bench import catalog

    return catalog.options()


_OPTIONS = _catalog_options()
VariantCfg = _variant_model()


class TrialConfig(_Strict):
    dataset: DatasetCfg = DatasetCfg()
    model: ModelCfg = ModelCfg()
    train: TrainCfg = TrainCfg()
    variant: VariantCfg = VariantCfg()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _resolve(self):
        # the structure says what it supports (its message starts with the field: "section.field: ...")
        for kind in ("objective", "structure"):
            try:
                plug = registry.plugin(kind, getattr(self.variant, kind))
            except ValueError as e:
                raise ValueError(f"variant.{kind}: {e}") from None
        try:
            plug.check(self)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug in the plug-in's check, not bad input: say whose
            raise ValueError(f"variant.structure: {registry.REGISTRY['structure'][self.variant.structure]}.check "
                             f"raised {type(e).__name__}: {e}") from None
        self._stabilizers_supported()
        if self.model.d_batch_norm is None:  # WGAN-GP's per-sample gradient penalty and batch norm don't mix
            self.model.d_batch_norm = self.model.batch_norm and self.variant.objective != "wgan-gp"
        return self


    def _stabilizers_supported(self) -> None:
        """A stabilizer set away from its default on a structure that does not declare it (bench.catalog `uses`),
        or normalization on a network without it, is an error here, not at run time."""
        from bench import catalog

        v, t = self.variant, self.train
        s = catalog.structure(v.structure)
        if s.datasets and self.dataset.name not in s.datasets:
            raise ValueError(f"dataset.name: structure '{v.structure}' trains on {', '.join(s.datasets)}, "
                             f"not {self.dataset.name}")
        if not s.datasets and self.dataset.name in registry.POINT_DATASETS:
            owners = [n for n, x in catalog.catalog().items() if self.dataset.name in x.datasets]
            raise ValueError(f"dataset.name: {self.dataset.name} is for structure {', '.join(owners)} "
                             f"(variant.structure), not {v.structure}")
        # a penalty with a piece of its own (dragan's draw, consensus's gradient field) is declared by that name
        used = {f"variant.penalty.{name}": name if name in catalog.STABILIZERS else "penalty"
                for name in registry.REGISTRY["penalty"] if getattr(v.penalty, name) > 0}
        if v.noise is not None:
            used["variant.noise"] = "noise"
        if t.updates != "alternating":
            used["train.updates"] = "updates"
        if t.ema is not None:
            used["train.ema"] = "ema"
        if self.model.d_norm is not None:
            used["model.d_norm"] = "d_norm"
        uses = s.uses
        for where, piece in used.items():
            if piece not in uses:
                have = [u for u in uses if u in catalog.STABILIZERS]
                raise ValueError(f"{where}: structure '{v.structure}' does not support {piece} (its stabilizers: "
                                 f"{', '.join(have) or 'none'})")
        own = registry.get("objective", v.objective).penalties  # a named combination such as r3gan (r1 + r2)
        if own and not ("penalty" in uses or (own == ("gp",) and "gp_weight" in uses)):
            raise ValueError(f"variant.objective: {v.objective} includes the penalties {', '.join(own)}, which "
                             f"structure '{v.structure}' does not support")
        if v.lens is not None and "lens" not in uses:
            raise ValueError(f"variant.lens: structure '{v.structure}' does not use the lens")
        if v.penalty.consensus > 0 and t.updates != "simultaneous":
            raise ValueError("variant.penalty.consensus: consensus optimization takes both players' gradients at one "
                             "point; set train.updates: simultaneous")
        if self.model.d_norm not in (None, "none") and self.model.name not in ("mlp", "dcgan"):
            raise ValueError(f"model.d_norm: {self.model.d_norm} normalization is built for the mlp and dcgan "
                             f"networks, not {self.model.name}")


TRIAL_FIELDS = tuple(TrialConfig.model_fields)


def trial_config(cfg: dict) -> TrialConfig:
    return TrialConfig.model_validate({k: cfg[k] for k in TRIAL_FIELDS if k in cfg})


# ----------------------------------------------------------------------------- study file
NOT_NULL = "not_null"  # a `when` condition: the path has a value (e.g. the lens is on)


class Dist(_Strict):
    dist: Literal["loguniform", "uniform", "randint", "choice"]
    low: Optional[float] = None
    high: Optional[float] = None
    values: Optional[list[Any]] = None
    when: Optional[dict[str, Any]] = Field(None, description=(
        "random with variants: a conditional prior, applied only to the variants whose config has, at every "
        "path named, one of the listed values ('not_null': any value but null); always drawn, so the random "
        "stream and the pairing of points across variants do not depend on the variant"))
    times: Optional[str] = Field(None, description=(
        "random with variants: the draw is a factor of this config path's value in the same trial (e.g. "
        "train.d_lr: {dist: loguniform, low: 0.25, high: 4, times: train.lr} samples the D/G learning-rate ratio)"))

    @model_validator(mode="after")
    def _check(self):
        if self.dist == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{self.dist} needs low < high (got low {self.low}, high {self.high})")
            if self.dist == "loguniform" and self.low <= 0:
                raise ValueError(f"loguniform needs bounds > 0 (got low {self.low})")
        return self

    def sample(self, rng: np.random.Generator):
        if self.dist == "choice":
            return copy.deepcopy(self.values[rng.integers(len(self.values))])
        if self.dist == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.dist == "uniform":
            return float(rng.uniform(self.low, self.high))
        return int(rng.integers(int(self.low), int(self.high) + 1))

    def applies(self, cfg: dict) -> bool:
        """Does this prior apply to a trial built from `cfg` (its `when` conditions all hold there)?"""
        return all(condition_holds(cond, get_path(cfg, path)) for path, cond in (self.when or {}).items())


def get_path(cfg: dict, path: str) -> Any:
    """The value at a dot path of a nested config (None where a section on the way is null); a numeric
    part indexes a list (train.betas.0)."""
    node: Any = cfg
    for p in path.split("."):
        if isinstance(node, (list, tuple)) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        elif isinstance(node, dict):
            node = node.get(p)
        else:
            return None
    return node


def condition_holds(cond: Any, value: Any) -> bool:
    """A `when` condition: 'not_null', a list of values, or one value (null: the path is null)."""
    if cond == NOT_NULL:
        return value is not None
    return value in (cond if isinstance(cond, list) else [cond])


def _axis(v):
    """An axis: a list of values, or a prior ({dist: ...}) whose own message names what is wrong with it."""
    if isinstance(v, (list, Dist)):
        return v
    if isinstance(v, dict):
        try:
            return Dist.model_validate(v)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"][len("Value error, "):] if err["msg"].startswith("Value error, ") else err["msg"]
            raise ValueError(f"{where}: {msg}" if where else msg) from None
    raise ValueError("an axis is a list of values or a prior {dist: loguniform|uniform|randint|choice, ...}")


AxisValues = Annotated[Any, PlainValidator(_axis)]


class Variants(_Strict):
    """random: the compared axis (e.g. objective x lens) as a grid, written as a sweep's axes / zip / cases
    (a bare list is a list of cases). Every variant gets the same num_samples points."""
    axes: dict[str, list[Any]] = {}
    zip: list[dict[str, list[Any]]] = []
    cases: list[dict[str, Any]] = []

    @model_validator(mode="before")
    @classmethod
    def _cases(cls, v):
        return {"cases": v} if isinstance(v, list) else v


class Retrain(_Strict):
    """random with variants, stage 2: each variant's `top` best sampled points (by the final `metric`) rerun
    with every seed in `seeds`; a seed equal to stage 1's reuses that trial."""
    top: int = Field(ge=1, description="points per variant to retrain")
    seeds: list[int] = Field(description="seeds each retrained point runs with")
    metric: Optional[str] = Field(None, description="final metric that ranks the points (default: the question's)")
    mode: Optional[Literal["min", "max"]] = Field(None, description="min or max (default: the metric's better side)")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v):
        from bench.metrics import INFO  # torch-free

        if v is not None and v not in INFO:
            raise ValueError(f"unknown metric '{v}' (known: {', '.join(INFO)})")
        return v


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
    variants: Optional[Variants] = Field(None, description=(
        "random: the compared axis as a grid; every variant gets the same num_samples points, each point's "
        "draws shared by every variant (a paired comparison); `axes` are then the sampled priors"))
    retrain: Optional[Retrain] = Field(None, description=(
        "random with variants: stage 2, each variant's best points rerun over seeds"))
    importance: Optional[list[str]] = Field(None, description=(
        "random with variants: the sampled knobs (paths in `axes`) the report's fANOVA importance and partial "
        "dependence are taken over; default: every sampled knob. At least 2 numeric ones"))
    pack: Literal["auto", "off"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="configurations trained together in one trial (bench.packing): auto, off, or at most N")

    @field_validator("pack", mode="before")
    @classmethod
    def _off(cls, v):
        return "off" if v is False else v  # YAML reads a bare `off` as false


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    retries: int = Field(2, ge=0, description="restarts of a failed trial (killed worker, lost node) from its "
                                              "latest checkpoint")


class NrdsCfg(_Strict):
    """Settings of the study-level NRDS (bench.nrds_step); not part of any trial config or trial id."""
    epochs: int = Field(20, ge=2, description="NRDS classifier epochs (curve points)")
    batch_size: int = Field(64, gt=0, description="NRDS classifier batch (real and fake each)")
    width: float = Field(0.25, gt=0, description="NRDS conv classifier width multiplier")


STATISTICS = ("mean_difference", "seed_spread", "axis_spread")
SCALES = ("absolute", "relative", "log")  # = bench.metrics.SCALES


class QuestionCfg(_Strict):
    """What the study asks; the report answers it first, as its one primary test (alpha 0.05, not
    corrected with the exploratory tables). Not part of any trial config or trial id."""
    text: str = ""
    compare: str = Field(description="config path whose levels are compared, e.g. variant.lens (null vs set)")
    levels: Optional[list[Any]] = Field(None, min_length=2, max_length=2, description=(
        "the two levels of `compare`, control first (default: null vs set)"))
    metric: str = Field(description="the primary metric (bench.metrics.INFO), e.g. energy_distance")
    co_primary: list[str] = Field([], description=(
        "further metrics that must agree with `metric` for a verdict: 'smaller', 'better' or 'worse' holds only "
        "when every co-primary metric is significant in that direction (an intersection-union test, each at alpha)"))
    secondary: list[str] = Field([], description="metrics answered beside the verdict, not deciding it")
    scale: Optional[str | dict[str, str]] = Field(None, description=(
        "the scale a spread is judged on: absolute (std), relative (std / mean) or log (std of log values); one for "
        "every metric or {metric: scale}; default per metric: relative for non-negative unbounded metrics, absolute "
        "for bounded ones (bench.metrics.default_scale)"))
    statistic: Literal[STATISTICS] = "seed_spread"
    axis: Optional[str | list[str]] = Field(None, description=(
        "axis_spread: the swept config path the spread is taken across; or two paths, one per level (control first), "
        "when each level sweeps a weight of its own (CycleGAN's cycle weight vs DiscoGAN's reconstruction weight)"))
    effect: Optional[float] = Field(None, gt=0, description=(
        "the effect worth detecting, for the power line (a spread ratio, or a mean difference); "
        "default: the observed one"))

    @field_validator("metric", "co_primary", "secondary")
    @classmethod
    def _metric(cls, v):
        from bench.metrics import INFO  # torch-free

        for m in [v] if isinstance(v, str) else v:
            if m not in INFO:
                raise ValueError(f"unknown metric '{m}' (known: {', '.join(INFO)})")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        for name in ([v] if isinstance(v, str) else (v or {}).values()):
            if name not in SCALES:
                raise ValueError(f"unknown scale '{name}' (one of {', '.join(SCALES)})")
        return v

    @property
    def deciding(self) -> list[str]:
        """The co-primary metrics, the primary first."""
        return list(dict.fromkeys([self.metric, *self.co_primary]))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys([*self.deciding, *self.secondary]))

    def scale_of(self, metric: str) -> str:
        from bench.metrics import default_scale

        if isinstance(self.scale, dict):
            return self.scale.get(metric) or default_scale(metric)
        return self.scale or default_scale(metric)


class Study(TrialConfig):
    name: str
    description: str = ""
    question: Optional[QuestionCfg] = None
    sweep: Sweep = Sweep()
    resources: Resources = Resources()
    nrds: NrdsCfg = NrdsCfg()

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("name must be a slug (letters, digits, _ . -), it names the results folder")
        return v

    _explicit_d_bn: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _d_bn_given(cls, data, handler):
        explicit = isinstance(data, dict) and isinstance(data.get("model"), dict) and \
            data["model"].get("d_batch_norm") is not None
        study = handler(data)
        study._explicit_d_bn = explicit
        return study

    def base_config(self) -> dict:
        """The trial config every trial starts from. model.d_batch_norm left unset in the file stays unset here, so
        each trial resolves it for its own objective (a sweep that switches a conv critic to wgan-gp gets no batch
        norm there); before this, the base's objective decided for every trial. Networks whose D has no batch norm
        (mlp, encdec: the field changes nothing) keep the base's value, so their trial ids stay what they were."""
        cfg = self.model_dump(include=set(TRIAL_FIELDS), mode="json")
        if not self._explicit_d_bn and self.model.name not in ("mlp", "encdec"):
            cfg["model"]["d_batch_norm"] = None
        return cfg


# ----------------------------------------------------------------------------- derived from a config
HASH_EXCLUDED = (("dataset", "data_root"), ("dataset", "download"), ("train", "checkpoint_every"))
# Fields added after studies had been run (paths into the config): left out of the hash while at their
# default, so the trial ids of existing results (and of resumed studies) stay what they were.
HASH_DROPPED_AT_DEFAULT = {("variant", "structure"): "gan", ("train", "nrds_samples"): 500,
                           ("dataset", "transform"): "invert", ("dataset", "vocab"): 5000, ("dataset", "seq_len"): 20,
                           ("train", "d_optimizer"): None, ("variant", "lens", "recon"): "sum",
                           ("train", "precision"): "fp32", ("model", "d_norm"): None,
                           ("train", "updates"): "alternating", ("train", "ema"): None, ("variant", "noise"): None,
                           ("variant", "penalty"): {name: 0.0 for name in registry.REGISTRY["penalty"]},
                           # every structure option (bench.catalog): adding a structure changes no existing id
                           **{("variant", name): o.default for name, o in _OPTIONS.items()}}


def config_hash(cfg: dict) -> str:
    canon = trial_config(cfg).model_dump(mode="json")
    for section, k in HASH_EXCLUDED:  # where the data lives, how often to checkpoint: not what the trial is
        canon[section].pop(k)
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
    structures the structure, e.g. "ed//gan", plus the objective when not ns), used in reports, then the stabilizers
    set away from their defaults (issue 25: "+r1 1", "+noise(linear 0.1 K=1000)", "simultaneous", "D spectral").
    The adversarial weight w is not in the name: it is the axis whose sensitivity the ED studies measure,
    so the report treats it as a swept axis of each structure."""
    v = cfg["variant"]
    structure = v.get("structure", "gan")
    if structure != "gan":
        from bench.catalog import arm_label

        return (structure + ("" if v["objective"] == "ns" else f" {v['objective']}") + arm_label(structure, v)
                + _stabilizers_label(cfg))
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
    return label + _stabilizers_label(cfg)


def _stabilizers_label(cfg: dict) -> str:
    v, t, m = cfg["variant"], cfg.get("train") or {}, cfg.get("model") or {}
    out = [f"+{name} {w:g}" for name, w in (v.get("penalty") or {}).items() if w]
    noise = v.get("noise")
    if noise:
        out.append(f"+noise({noise['schedule']} {noise['sigma']:g}" +
                   (f" K={noise['K']})" if noise["schedule"] not in ("constant", "none") else ")"))
    if t.get("updates", "alternating") != "alternating":
        out.append(t["updates"])
    own = "batch" if m.get("name", "mlp") != "mlp" and m.get("d_batch_norm") else "none"  # the network's default D
    if m.get("d_norm") is not None and m["d_norm"] != own:
        out.append(f"D {m['d_norm']}")
    if t.get("ema") is not None:
        out.append(f"ema {t['ema']:g}")
    return "".join(" " + x if not x.startswith("+") else x for x in out)


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


# every column a trial row can have (built without validation: no structure module, no torch, is imported)
_TEMPLATE = flatten(TrialConfig.model_construct(variant=VariantCfg.model_construct(lens=LensCfg(), noise=NoiseCfg()))
                    .model_dump(mode="json"))


def _kind(ann) -> str:
    """An annotation's Arrow type name: int64, float64, bool, string, or a sub-model (its class)."""
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        kinds = [_kind(a) for a in args if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else "string"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    return {bool: "bool", int: "int64", float: "float64"}.get(ann, "string")  # str, Literal, tuple (JSON)


@functools.cache  # the models never change; results.arrow_type asks for every column of every table it writes
def column_types(model=None, prefix: str = "") -> dict[str, str]:
    """The Arrow type of every flat config column (`train.lr`: float64, `variant.lens.K`: int64, ...)."""
    out = {}
    for name, f in (model or TrialConfig).model_fields.items():
        kind = _kind(f.annotation)
        if isinstance(kind, type):
            out.update(column_types(kind, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = kind
    return out


def flat_config(cfg: dict) -> dict:
    """Every config field as its own column, the same columns for every trial (a trial without a
    lens has null variant.lens.* columns, one without instance noise null variant.noise.*)."""
    flat = flatten({k: cfg[k] for k in TRIAL_FIELDS})
    flat.pop("variant.lens", None), flat.pop("variant.noise", None)
    return {k: flat.get(k) for k in _TEMPLATE}
