"""The structure catalog (issue 24, items 1-2): each structure declares its options, losses, grids, metrics and
report sections in its own module (DECLARE, plain data), read without importing the module; the schema, the packer,
the Parquet columns and the metric tables are derived from it; every published trial id stays what it was."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import catalog, registry
from bench.metrics import INFO, OWN_METRICS
from bench.packing import PACKABLE
from bench.results import GRIDS, LOSSES
from bench.schema import HASH_DROPPED_AT_DEFAULT, VariantCfg, config_hash
from conftest import GANBENCH, ROOT

STRUCTURES = registry.names("structure")


def test_the_catalog_imports_no_torch_and_no_structure_module():
    code = ("import sys; from bench import catalog; c = catalog.catalog(); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('bench.structures')]; "
            "assert not bad, bad; print(len(c))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert int(out.stdout) == len(STRUCTURES)


@pytest.mark.parametrize("name", STRUCTURES)
def test_every_declaration_feeds_the_derived_tables(name):
    s = catalog.structure(name)
    for o in s.options.values():
        assert o.name in VariantCfg.model_fields
        assert HASH_DROPPED_AT_DEFAULT[("variant", o.name)] == o.default
        assert (("variant", o.name) in PACKABLE) == bool(o.packable)
    assert set(s.losses) <= set(LOSSES) and {f"grid_{g}" for g in s.grids} <= set(GRIDS)
    assert set(OWN_METRICS[name]) == set(s.metrics) | set(s.new_metrics) and set(s.metrics) <= set(INFO)
    assert s.headline is None or s.headline in INFO


def test_every_published_trial_id_is_unchanged():
    """The id is a hash of the canonical config: recomputed from each committed row's config, it is the row's id."""
    n = 0
    for f in sorted(Path(ROOT, "results").glob("*/trials.parquet")):
        t = pd.read_parquet(f, columns=["trial_id", "config"])
        for tid, cfg in zip(t["trial_id"], t["config"]):
            assert config_hash(json.loads(cfg)) == tid, f"{f}: {tid}"
            n += 1
    assert n > 500


def test_the_options_block_is_the_flat_fields():
    flat = {"structure": "ed//gan", "w": 0.5, "task": "inpaint"}
    block = {"structure": "ed//gan", "options": {"w": 0.5, "task": "inpaint"}}
    assert VariantCfg.model_validate(block).model_dump() == VariantCfg.model_validate(flat).model_dump()


BAD = {
    "option-of-another-structure": ("variant: {structure: gan, w: 0.5}", "variant.w",
                                    "not an option of structure 'gan' (it belongs to ed+gan, ed+gan2, ed//gan)"),
    "option-in-block-of-another": ("variant: {structure: gan, options: {age_lambda: 5}}", "variant.age_lambda",
                                   "not an option of structure 'gan' (it belongs to age)"),
    "unknown-option-in-block": ("variant: {structure: age, options: {age_lamda: 5}}", "variant.options.age_lamda",
                                "not an option of any structure; age's options: age_lambda, age_mu, age_g_steps"),
    "block-and-flat": ("variant: {structure: age, age_mu: 1, options: {age_mu: 2}}", "variant.options.age_mu",
                       "given both in the options block and beside it"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_option_its_structure_does_not_declare_exits_2_at_validate(tmp_path, case):
    text, field, message = BAD[case]
    study = tmp_path / "study.yaml"
    study.write_text(f"name: x\n{text}\n")
    p = subprocess.run([GANBENCH, "validate", str(study)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {study}: {field}: "), p.stderr
    assert message in lines[0]


def test_a_sweep_over_an_option_in_block_syntax(tmp_path):
    from conftest import expand_text

    trials = expand_text(tmp_path, "name: x\ndataset: {name: fashion_mnist}\nmodel: {name: encdec}\n"
                                   "variant: {structure: ed//gan, options: {task: inpaint}}\n"
                                   "sweep: {axes: {variant.options.w: [0.1, 1.0]}}\n")
    assert [t["variant"]["w"] for t in trials] == [0.1, 1.0]


def _module(tmp_path, monkeypatch, source: str) -> str:
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('the catalog must not import the package')\n")
    (pkg / "toy.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "plugpkg.toy"


def test_a_declaration_is_read_without_running_the_module(tmp_path, monkeypatch):
    mod = _module(tmp_path, monkeypatch, "import torch_that_does_not_exist\nDECLARE_BASE = {'losses': ['loss_d']}\n"
                                         "DECLARE = {'toy': {**DECLARE_BASE, 'title': 'Toy'}}\n")
    assert catalog.read_declarations(mod) == {"toy": {"losses": ["loss_d"], "title": "Toy"}}


@pytest.mark.parametrize("source, message", [
    ("X = 1\n", "no DECLARE"),
    ("DECLARE = {'toy': open('/etc/passwd')}\n", "must be plain data"),
])
def test_a_broken_declaration_names_the_module(tmp_path, monkeypatch, source, message):
    mod = _module(tmp_path, monkeypatch, source)
    with pytest.raises(catalog.CatalogError, match=f"^{mod}: .*{message}"):
        catalog.read_declarations(mod)


@pytest.mark.parametrize("raw, message", [
    ({"optins": {}}, "unknown key(s) optins"),
    ({"options": {"w": {"type": "float"}}}, "needs at least 'type' and 'default'"),
    ({"options": {"w": {"type": "complex", "default": 1}}}, "type 'complex' is not one of"),
    ({"options": {"objective": {"type": "str", "default": "ns"}}}, "'objective' cannot be a structure option"),
    ({"sections": ["zoo"]}, "sections: zoo"),
    ({"options": {"w": {"type": "float", "default": 1.0}}, "arms": ["mode"]}, "arms: mode (not among its options)"),
])
def test_an_invalid_declaration_names_the_key(raw, message):
    with pytest.raises(catalog.CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog._structure("toy", "plugpkg.toy", raw)


def test_arms_name_their_variants_and_the_report_keeps_them_apart():
    """DANN's schedule and oracle and SeqGAN's adversarial phase are methods, not settings: away from their defaults
    they are in the variant label (so the report's per-variant tables and figures never pool an oracle with the
    arms it bounds), at their defaults the label is the structure's name as before (no published name changes)."""
    from bench.schema import variant_label

    def label(structure, **v):
        return variant_label({"variant": {"structure": structure, "objective": "ns", **v}})

    assert label("dann", dann_schedule="dann", dann_oracle=False) == "dann"
    assert label("dann", dann_schedule="constant", dann_oracle=False) == "dann schedule=constant"
    assert label("dann", dann_schedule="none", dann_oracle=True) == "dann schedule=none oracle=True"
    assert label("seqgan", seqgan_adversarial=False) == "seqgan adversarial=False"
    assert label("seqgan", seqgan_adversarial=True) == "seqgan"
    assert catalog.arm_label("cgan", {"lambda_cls": 3.0}) == ""


# ----------------------------------------------------------------------------- plug-in hygiene at validate (item 4)
PLUGINS = {
    "structure-missing-step": ("structure", "broken", "broken_struct",
                               "DECLARE = {'broken': {'sections': []}}\nfrom bench.structures import gan\n"
                               "check, build, batch, Evaluate = gan.check, gan.build, gan.batch, gan.Evaluate\n",
                               "variant.structure", "structure 'broken' (broken_struct) lacks step: "
                                                    "step(nets, batch, pack, t)"),
    "structure-check-crashes": ("structure", "broken", "broken_struct",
                                "DECLARE = {'broken': {'sections': []}}\nfrom bench.structures import gan\n"
                                "build, batch, step, Evaluate = gan.build, gan.batch, gan.step, gan.Evaluate\n"
                                "def check(cfg):\n    return cfg.variant.nope\n",
                                "variant.structure", "broken_struct.check raised AttributeError"),
    "registry-typo": ("objective", "typo", "bench.objectives.classic:nss", None, "variant.objective",
                      "objective 'typo' (bench.objectives.classic:nss) cannot be imported: AttributeError"),
    "objective-missing-a-loss": ("objective", "half", "half_objective:half",
                                 "from types import SimpleNamespace\nhalf = SimpleNamespace(d=lambda r, f: f, g=None)\n",
                                 "variant.objective", "objective 'half' (half_objective:half) lacks g: g(r, f): G's "
                                                      "loss; lens: lens(r, f): the lens' loss"),
}


@pytest.mark.parametrize("case", sorted(PLUGINS))
def test_a_broken_plugin_exits_2_at_validate_naming_its_module(tmp_path, case):
    """Registered through the registry as a user would (one line), validated by the real CLI in a fresh process."""
    kind, name, entry, source, field, message = PLUGINS[case]
    if source is not None:
        (tmp_path / f"{entry.split(':')[0]}.py").write_text(source)
    study = tmp_path / "study.yaml"
    study.write_text(f"name: x\nvariant: {{{kind}: {name}}}\n")
    code = ("import sys; from bench import registry; "
            f"registry.REGISTRY[{kind!r}][{name!r}] = {entry!r}; "
            "from bench.cli import main; sys.argv = ['ganbench', 'validate', sys.argv[1]]; main()")
    p = subprocess.run([sys.executable, "-c", code, str(study)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {study}: {field}: "), p.stderr
    assert message in lines[0]
