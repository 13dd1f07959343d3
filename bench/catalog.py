"""The structure catalog: what each registered training structure declares about itself, read without importing it.

A structure module (bench/structures/<name>.py, one line in bench/registry.py) trains with torch, but the study
schema, the packer, the Parquet schema, the statistics and the report must know its options, losses, metrics and
report sections without torch. So the module declares them in top-level assignments to names starting with
`DECLARE`, written as plain data (dicts, lists, strings, numbers; a `DECLARE_*` name may be reused inside a later
`DECLARE`, e.g. `{**DECLARE_ED, ...}`), and this module reads those assignments from the source file (ast) and
evaluates them alone, with no builtins and nothing imported. `DECLARE` maps each structure name the module
serves to its declaration:

    options      {name: {"type": "float" | "int" | "bool" | "str" | "task", "default": ..., "ge"/"gt"/"le"/"lt": ...,
                         "doc": "...", "packable": true | "while_on"}}
                 the structure's own `variant.<name>` fields. A field another structure owns is rejected for it
                 unless left at its default. Options are left out of the trial id while at their default (adding a
                 structure changes no existing id). `packable`: configurations differing in it can share a pack
                 (`while_on`: if all of them have it > 0, or all = 0).
    uses         the shared pieces it reads: objective, lens, clip, gp_weight (the objective's pieces; the default),
                 and the stabilizers it supports: penalty (gp, r1, r2 on D via d_loss), dragan, consensus, updates
                 (simultaneous), noise (instance noise), ema (G weight averaging), d_norm (model.d_norm: its D is
                 built by bench.nets.mlp / dcgan); `ganbench validate` rejects the others away from their defaults
    losses       loss_<name> columns its step returns
    grids        grid_<kind> images its Evaluate returns
    metrics      its own metrics (beyond its dataset's sample metrics), names in bench.metrics.INFO or in `new_metrics`
    new_metrics  {name: {"higher_is_better": bool, "label": "...", "range": [lo, hi], "positive": bool,
                         "diagnostic": bool}}: metrics
                 nothing else records (bench.metrics adds them to INFO and BOUNDS)
    headline     the metric its report leads with
    success      "collapse" (finished and not collapsed: modes / recall) or "finished" (status ok only)
    sections     report sections that apply: "treatment" (the lens pairing), "own_weights" (sensitivity to its
                 own weights), "edgan" (the encoder-decoder section), "nrds", or a section of its own as
                 "module:function" (a torch-free module; function(data) -> (headline sentences, report blocks))
    conditioned  its outputs are conditioned on test inputs (encoder-decoders): a low recall is not a collapse
    datasets     the only datasets it trains on (e.g. the Dirac GAN's point mass); default: any but the point datasets
                 (bench.registry.POINT_DATASETS), which only a structure that names them can use
    samples      false for a structure that generates no samples to score (a classifier, e.g. DANN): its rows hold
                 only its own metrics, not its dataset's sample metrics; default true
    arms         options whose values make different methods rather than settings of one (DANN's schedule and
                 its target oracle, SeqGAN's adversarial phase): named in the variant label ("dann
                 schedule=constant"), so the report never pools them; each must be in `options`
    title, doc   the name a reader knows it by (e.g. "ED//GAN") and one line

Nothing here imports torch; `python -c "import bench.catalog"` stays light.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench import registry

KEYS = {"options", "uses", "losses", "grids", "metrics", "new_metrics", "headline", "success", "sections",
        "conditioned", "title", "doc", "datasets", "samples", "arms"}
OPTION_KEYS = {"type", "default", "ge", "gt", "le", "lt", "doc", "packable", "choices"}
TYPES = ("float", "int", "bool", "str", "task")
SHARED = ("objective", "lens", "clip", "gp_weight")  # variant fields of the objective pieces, not of a structure
# the stabilizers (issue 25) a structure may declare in `uses`: penalty = gp / r1 / r2 through bench.structures.d_loss;
# the others live in a structure's own step (DRAGAN's perturbation draw, consensus and simultaneous updates, instance
# noise, the averaged generator), so only the structures that implement them declare them
STABILIZERS = ("penalty", "dragan", "consensus", "updates", "noise", "ema", "d_norm")
USES = SHARED + STABILIZERS
SUCCESS = ("collapse", "finished")
SECTIONS = ("treatment", "own_weights", "edgan", "nrds")


class CatalogError(ValueError):
    """A declaration that cannot be read or is not valid: names the module and the key."""


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: Any
    doc: str = ""
    packable: bool | str = False
    bounds: dict = field(default_factory=dict)  # ge / gt / le / lt


@dataclass(frozen=True)
class Structure:
    name: str
    module: str
    options: dict[str, Option]
    uses: tuple[str, ...] = SHARED
    losses: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    new_metrics: dict = field(default_factory=dict)
    headline: str | None = None
    success: str = "collapse"
    sections: tuple[str, ...] = ()
    conditioned: bool = False
    title: str = ""
    doc: str = ""
    datasets: tuple[str, ...] = ()
    samples: bool = True
    arms: tuple[str, ...] = ()


def _source_file(module: str) -> str:
    """The module's source file, found without importing it or its parent packages (bench.structures' __init__
    imports torch): the top-level package's location plus the dotted path."""
    top, *rest = module.split(".")
    spec = find_spec(top)
    if spec is not None and not rest and spec.origin and spec.origin.endswith(".py"):
        return spec.origin  # a top-level module of its own (a user's plug-in file)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        base = Path(root, *rest)
        for f in (base.with_suffix(".py"), base / "__init__.py"):
            if f.is_file():
                return str(f)
    raise CatalogError(f"{module}: module not found (bench/registry.py names it)")


def read_declarations(module: str) -> dict:
    """The module's DECLARE dict, evaluated from its `DECLARE*` assignments alone (no import)."""
    path = _source_file(module)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    ns: dict = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.startswith("DECLARE")
                                                for t in node.targets):
            code = compile(ast.Module([node], []), path, "exec")
            try:
                exec(code, {"__builtins__": {}}, ns)  # plain data only: no builtins, no imports
            except Exception as e:  # noqa: BLE001 - any error is the declaration's
                raise CatalogError(f"{module}: line {node.lineno}: a DECLARE assignment must be plain data ({e})") \
                    from None
    if not isinstance(ns.get("DECLARE"), dict):
        raise CatalogError(f"{module}: no DECLARE = {{structure name: declaration}} at the top level")
    return ns["DECLARE"]


def _option(module: str, name: str, raw: Any) -> Option:
    where = f"{module}: DECLARE options.{name}"
    if not isinstance(raw, dict) or "type" not in raw or "default" not in raw:
        raise CatalogError(f"{where}: needs at least 'type' and 'default'")
    unknown = set(raw) - OPTION_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(OPTION_KEYS))})")
    if raw["type"] not in TYPES:
        raise CatalogError(f"{where}: type '{raw['type']}' is not one of {', '.join(TYPES)}")
    if name in USES or not name.isidentifier():
        raise CatalogError(f"{where}: '{name}' cannot be a structure option")
    return Option(name, raw["type"], raw["default"], raw.get("doc", ""), raw.get("packable", False),
                  {k: raw[k] for k in ("ge", "gt", "le", "lt") if k in raw})


def _is_ref(x) -> bool:
    mod, _, fn = str(x).partition(":")
    return bool(fn) and fn.isidentifier() and all(p.isidentifier() for p in mod.split("."))


def _structure(name: str, module: str, raw: Any) -> Structure:
    where = f"{module}: DECLARE['{name}']"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: a declaration is a dict")
    unknown = set(raw) - KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
    for key, allowed in (("uses", USES), ("sections", SECTIONS)):
        # a section of one's own: "module:function", a torch-free module whose function(data) returns
        # (headline sentences, report blocks) (bench.report.declared_sections)
        bad = [x for x in raw.get(key, ()) if x not in allowed and not (key == "sections" and _is_ref(x))]
        if bad:
            raise CatalogError(f"{where}: {key}: {', '.join(bad)} (known: {', '.join(allowed)})")
    if raw.get("success", "collapse") not in SUCCESS:
        raise CatalogError(f"{where}: success: '{raw['success']}' is not one of {', '.join(SUCCESS)}")
    options = {k: _option(module, k, v) for k, v in (raw.get("options") or {}).items()}
    stray = [a for a in raw.get("arms", ()) if a not in options]
    if stray:
        raise CatalogError(f"{where}: arms: {', '.join(stray)} (not among its options)")
    return Structure(name, module, options, tuple(raw.get("uses", SHARED)), tuple(raw.get("losses", ())),
                     tuple(raw.get("grids", ())), tuple(raw.get("metrics", ())), dict(raw.get("new_metrics") or {}),
                     raw.get("headline"), raw.get("success", "collapse"), tuple(raw.get("sections", ())),
                     bool(raw.get("conditioned", False)), raw.get("title", name), raw.get("doc", ""),
                     tuple(raw.get("datasets", ())), bool(raw.get("samples", True)), tuple(raw.get("arms", ())))


def arm_label(structure: str, values: dict) -> str:
    """The variant label's part naming a structure's arms away from their defaults (` schedule=none oracle=True`):
    `values` maps each declared arm option to its value in a trial; "" at the defaults or without arms."""
    spec = catalog().get(structure)
    if spec is None or not spec.arms:
        return ""
    def show(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return "".join(f" {a.removeprefix(structure + '_')}={show(values[a])}" for a in spec.arms
                   if a in values and values[a] != spec.options[a].default)


@functools.cache
def catalog() -> dict[str, Structure]:
    """Every registered structure's declaration, in registry order."""
    out, decls = {}, {}
    for name, module in registry.REGISTRY["structure"].items():
        module = module.partition(":")[0]
        if module not in decls:
            decls[module] = read_declarations(module)
        if name not in decls[module]:
            raise CatalogError(f"{module}: DECLARE has no entry for structure '{name}' (bench/registry.py maps it "
                               f"to this module; it declares {', '.join(decls[module]) or 'nothing'})")
        out[name] = _structure(name, module, decls[module][name])
    _check_shared_options(out)
    return out


def _check_shared_options(cat: dict[str, Structure]) -> None:
    """An option name two structures declare is one variant field: the declarations must agree."""
    seen: dict[str, tuple[str, Option]] = {}
    for s in cat.values():
        for o in s.options.values():
            if o.name in seen and seen[o.name][1] != o:
                raise CatalogError(f"{s.module}: option '{o.name}' of '{s.name}' differs from the one structure "
                                   f"'{seen[o.name][0]}' declares; a shared option must be declared alike")
            seen.setdefault(o.name, (s.name, o))


def structure(name: str) -> Structure:
    return catalog()[registry.check("structure", name)]


def options() -> dict[str, Option]:
    """Every structure option (variant field), first declaration order."""
    out: dict[str, Option] = {}
    for s in catalog().values():
        for o in s.options.values():
            out.setdefault(o.name, o)
    return out


def owners(option: str) -> list[str]:
    return [s.name for s in catalog().values() if option in s.options]


def packable() -> dict[str, bool | str]:
    """{option: True | 'while_on'} for the options configurations may differ in within a pack."""
    return {o.name: o.packable for o in options().values() if o.packable}


def losses() -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for s in catalog().values() for x in s.losses))


def grids() -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for s in catalog().values() for x in s.grids))


def conditioned() -> tuple[str, ...]:
    return tuple(s.name for s in catalog().values() if s.conditioned)


def with_section(section: str) -> tuple[str, ...]:
    return tuple(s.name for s in catalog().values() if section in s.sections)
