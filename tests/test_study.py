"""Study files: expansion counts, duplicate removal, random/optuna sampling, --set, trial ids, flat config."""

import copy
import math
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from bench.schema import TrialConfig, config_hash, flat_config, trial_config
from bench.study import StudyError, expand, load_study

from conftest import load_shipped

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "studies" / "quickstart.yaml"


def write(tmp_path, text, name="study.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def trials_of(path, overrides=()):
    return expand(load_shipped(path, overrides))


# ----------------------------------------------------------------------------- quickstart
def test_quickstart_expands_to_12_trials_in_4_variants():
    trials = trials_of(QUICKSTART)
    assert len(trials) == 12
    labels = Counter(t["variant_label"] for t in trials)
    assert labels == {"ns": 3, "lsgan": 3, "ns+lens(sine K=1000)": 3, "lsgan+lens(sine K=1000)": 3}
    assert len({t["trial_id"] for t in trials}) == 12
    assert sorted({t["seed"] for t in trials}) == [0, 1, 2]
    for t in trials:
        assert t["study"] == "quickstart"
        assert t["trial_id"] == config_hash(t)
        assert t["resources"] == {"cpu": 1.0, "gpu": 0.0, "retries": 2}
        # the trial's config is a valid TrialConfig that validation leaves as it is (no field dropped or defaulted
        # differently), with the quickstart's values
        own = {k: t[k] for k in ("dataset", "model", "train", "variant", "seed")}
        assert TrialConfig.model_validate(own).model_dump(mode="json") == own
        assert (t["model"]["name"], t["model"]["width"], t["train"]["lr"], t["train"]["batch_size"]) == \
            ("mlp", 128, 1e-3, 256)
        assert t["variant"]["objective"] in ("ns", "lsgan") and t["seed"] in (0, 1, 2)
        assert t["variant"]["lens"] is None or (t["variant"]["lens"]["schedule"], t["variant"]["lens"]["K"]) == \
            ("sine", 1000)
        # base config fields not swept are carried into every trial
        assert t["train"]["steps"] == 2000 and t["dataset"]["name"] == "ring8"


def test_every_shipped_study_expands():
    counts = {p.stem: len(trials_of(p)) for p in sorted((ROOT / "studies").glob("*.yaml"))}
    assert counts["quickstart"] == 12
    # lens_toy: 2 toys x 6 objectives x (no lens + sine K in {500, 2000} + constant) x 5 seeds
    assert counts["lens_toy"] == 2 * 6 * 4 * 12
    # zoo_paper: cgan on 2 sets + acgan / infogan / age / ali at 5 weights + sgan at 4 lambda_fm x 2 n_labels, 3 seeds
    assert counts["zoo_paper"] == (2 + 4 * 5 + 4 * 2) * 3
    assert counts["zoo_fmnist"] == (1 + 5 * 4) * 3


# ----------------------------------------------------------------------------- grid grammar
GRID = """\
    name: grid
    train: {steps: 100, optimizer: adam, lr: 1.0e-3}
    variant: {objective: ns, lens: null}
    sweep:
      axes:
        model.width: [32, 64]
      zip:
        - variant.objective: [ns, wgan, lsgan]
          train.optimizer: [adam, rmsprop, adam]
          train.lr: [1.0e-3, 5.0e-4, 2.0e-3]
      cases:
        - {variant.lens: null}
        - {variant.lens: {schedule: sine}, variant.lens.K: [500, 2000]}
      seeds: [0, 1]
"""


def test_axes_zip_cases_seeds_multiply(tmp_path):
    trials = trials_of(write(tmp_path, GRID))
    assert len(trials) == 2 * 3 * (1 + 2) * 2 == 36
    assert len({t["trial_id"] for t in trials}) == 36
    # zip pairs element-wise: never wgan with adam, never ns with 5e-4
    pairs = {(t["variant"]["objective"], t["train"]["optimizer"], t["train"]["lr"]) for t in trials}
    assert pairs == {("ns", "adam", 1e-3), ("wgan", "rmsprop", 5e-4), ("lsgan", "adam", 2e-3)}
    # cases: a lens K only where the lens is on
    lenses = Counter(None if t["variant"]["lens"] is None else t["variant"]["lens"]["K"] for t in trials)
    assert lenses == {None: 12, 500: 12, 2000: 12}
    assert all(t["variant"]["lens"]["schedule"] == "sine" for t in trials if t["variant"]["lens"])
    assert Counter(t["model"]["width"] for t in trials) == {32: 18, 64: 18}
    assert Counter(t["seed"] for t in trials) == {0: 18, 1: 18}
    assert len({t["variant_label"] for t in trials}) == 3 * 3


def test_zip_groups_must_have_equal_lengths(tmp_path):
    p = write(tmp_path, """\
        name: z
        sweep:
          zip:
            - {variant.objective: [ns, lsgan], train.lr: [1.0e-3]}
    """)
    with pytest.raises(StudyError) as e:
        load_study(p)
    assert e.value.field == "sweep.zip[0]"


def test_duplicate_points_are_removed(tmp_path):
    p = write(tmp_path, """\
        name: dup
        variant: {objective: ns, lens: null}
        sweep:
          axes:
            train.lr: [1.0e-3, 0.001]     # the same number twice
          cases:
            - {variant.lens: null}
            - {variant.objective: ns}     # the base value: same config as the first case
            - {variant.lens: {schedule: linear, K: 10}}
            - {variant.lens: {schedule: linear}, variant.lens.K: [10, 20]}   # K=10 repeats the case above
          seeds: [0, 0, 1]
    """)
    trials = trials_of(p)
    # distinct: lr {1e-3} x lens {none, linear K=10, linear K=20} x seed {0, 1}
    assert len(trials) == 1 * 3 * 2
    assert len({t["trial_id"] for t in trials}) == len(trials)
    assert Counter(t["variant_label"] for t in trials) == {"ns": 2, "ns+lens(linear K=10)": 2,
                                                          "ns+lens(linear K=20)": 2}


def test_a_sweep_value_equal_to_the_base_value_is_not_a_new_trial(tmp_path):
    p = write(tmp_path, """\
        name: dup2
        train: {steps: 50}
        sweep: {axes: {train.steps: [50, 60, 50]}}
    """)
    assert [t["train"]["steps"] for t in trials_of(p)] == [50, 60]


def test_no_sweep_is_one_trial_with_the_base_seed(tmp_path):
    trials = trials_of(write(tmp_path, "name: one\nseed: 7\n"))
    assert len(trials) == 1 and trials[0]["seed"] == 7
    assert trials[0]["variant_label"] == "ns"


# ----------------------------------------------------------------------------- random / optuna
RANDOM = """\
    name: rnd
    train: {{steps: 100, lr: 1.0e-3}}
    sweep:
      method: random
      num_samples: {n}
      sample_seed: {seed}
      include_default: {default}
      axes:
        train.lr: {{dist: loguniform, low: 1.0e-5, high: 1.0e-2}}
        train.batch_size: [32, 64, 128]
        model.width: {{dist: randint, low: 16, high: 64}}
"""


def random_trials(tmp_path, n=8, seed=0, default="true", name="r.yaml"):
    return trials_of(write(tmp_path, RANDOM.format(n=n, seed=seed, default=default), name))


def test_random_gives_num_samples_points_default_first(tmp_path):
    trials = random_trials(tmp_path, n=8)
    assert len(trials) == 8
    assert len({t["trial_id"] for t in trials}) == 8
    first = trials[0]
    assert first["train"]["lr"] == 1e-3 and first["train"]["batch_size"] == 256 and first["model"]["width"] == 128
    for t in trials[1:]:
        assert 1e-5 <= t["train"]["lr"] <= 1e-2
        assert t["train"]["batch_size"] in (32, 64, 128)
        assert 16 <= t["model"]["width"] <= 64 and isinstance(t["model"]["width"], int)


def test_random_without_default(tmp_path):
    trials = random_trials(tmp_path, n=5, default="false")
    assert len(trials) == 5
    assert all(t["train"]["batch_size"] in (32, 64, 128) for t in trials)


def test_random_is_reproducible_per_sample_seed(tmp_path):
    ids = lambda ts: [t["trial_id"] for t in ts]  # noqa: E731
    a = random_trials(tmp_path, seed=3, name="a.yaml")
    b = random_trials(tmp_path, seed=3, name="b.yaml")
    c = random_trials(tmp_path, seed=4, name="c.yaml")
    assert ids(a) == ids(b)
    assert ids(a)[0] == ids(c)[0]  # the default point
    assert ids(a)[1:] != ids(c)[1:]
    assert not set(ids(a)[1:]) & set(ids(c)[1:])


def test_loguniform_samples_spread_over_the_decades(tmp_path):
    trials = random_trials(tmp_path, n=200, default="false")
    logs = [math.log10(t["train"]["lr"]) for t in trials]
    assert all(-5 <= x <= -2 for x in logs)
    # log-uniform: about a third in each decade (uniform would put ~90% in the top decade)
    per_decade = Counter(min(int(-x), 4) for x in logs)  # 2: [1e-3,1e-2], 3: [1e-4,1e-3], 4: [1e-5,1e-4]
    assert all(35 <= per_decade[d] <= 100 for d in (2, 3, 4)), per_decade


def test_random_with_seeds_runs_each_point_per_seed(tmp_path):
    p = write(tmp_path, RANDOM.format(n=4, seed=0, default="true") + "      seeds: [0, 1, 2]\n")
    trials = trials_of(p)
    assert len(trials) == 12
    assert Counter(t["seed"] for t in trials) == {0: 4, 1: 4, 2: 4}


def test_optuna_counts_num_samples(tmp_path):
    p = write(tmp_path, """\
        name: opt
        sweep:
          method: optuna
          num_samples: 6
          metric: w1
          mode: min
          axes:
            train.lr: {dist: loguniform, low: 1.0e-5, high: 1.0e-2}
    """)
    assert len(trials_of(p)) == 6


def test_optuna_needs_metric_and_mode(tmp_path):
    p = write(tmp_path, """\
        name: opt
        sweep:
          method: optuna
          num_samples: 6
          axes: {train.lr: {dist: loguniform, low: 1.0e-5, high: 1.0e-2}}
    """)
    with pytest.raises(StudyError) as e:
        load_study(p)
    assert e.value.field == "sweep.metric"


def test_grid_rejects_a_distribution(tmp_path):
    p = write(tmp_path, "name: g\nsweep: {axes: {train.lr: {dist: uniform, low: 0.1, high: 0.2}}}\n")
    with pytest.raises(StudyError) as e:
        load_study(p)
    assert e.value.field == "sweep.axes.train.lr"


# ----------------------------------------------------------------------------- --set
def test_set_train_steps():
    trials = trials_of(QUICKSTART, ["train.steps=200"])
    assert len(trials) == 12
    assert {t["train"]["steps"] for t in trials} == {200}
    # a different config, so different trial ids
    assert not {t["trial_id"] for t in trials} & {t["trial_id"] for t in trials_of(QUICKSTART)}


def test_set_an_axis_with_a_dotted_key():
    trials = trials_of(QUICKSTART, ["sweep.axes.seed=[0]"])
    assert len(trials) == 4
    assert {t["seed"] for t in trials} == {0}
    assert len({t["variant_label"] for t in trials}) == 4


def test_set_a_sub_model(tmp_path):
    p = write(tmp_path, """\
        name: s
        variant: {objective: ns, lens: null}
        sweep: {axes: {variant.objective: [ns, hinge]}, seeds: [0, 1]}
    """)
    assert {t["variant_label"] for t in trials_of(p)} == {"ns", "hinge"}
    trials = trials_of(p, ["variant.lens={schedule: linear, K: 10}"])
    assert len(trials) == 4
    assert {t["variant_label"] for t in trials} == {"ns+lens(linear K=10)", "hinge+lens(linear K=10)"}
    assert all(t["variant"]["lens"]["schedule"] == "linear" and t["variant"]["lens"]["K"] == 10 for t in trials)
    # and an axis over a lens field works once the lens is on
    trials = trials_of(p, ["variant.lens={schedule: linear, K: 10}", "sweep.axes.variant.lens.K=[10, 30]"])
    assert len(trials) == 8
    assert Counter(t["variant"]["lens"]["K"] for t in trials) == {10: 4, 30: 4}


def test_set_on_quickstart_lens_axis():
    trials = trials_of(QUICKSTART, ["sweep.axes.variant.lens=[{schedule: linear, K: 10}]"])
    assert len(trials) == 6
    assert {t["variant_label"] for t in trials} == {"ns+lens(linear K=10)", "lsgan+lens(linear K=10)"}


def test_set_is_validated_and_names_itself():
    with pytest.raises(StudyError) as e:
        load_study(QUICKSTART, ["train.steps=-5"])
    assert e.value.field == "train.steps" and "--set train.steps=-5" in e.value.message
    with pytest.raises(StudyError) as e:
        load_study(QUICKSTART, ["nokey"])
    assert e.value.file == str(QUICKSTART) and "nokey" in e.value.field
    with pytest.raises(StudyError) as e:
        load_study(QUICKSTART, ["variant.lens.K=5"])  # quickstart's base lens is null
    assert "null" in e.value.message


# ----------------------------------------------------------------------------- trial ids
def test_trial_id_is_stable_and_sensitive_to_every_field(monkeypatch):
    from bench import registry

    # only one network is registered; a second name lets model.name vary
    monkeypatch.setitem(registry.REGISTRY, "network", {**registry.REGISTRY["network"], "mlp2": "x:y"})
    base = TrialConfig().model_dump(mode="json")
    h = config_hash(base)
    assert config_hash(TrialConfig().model_dump(mode="json")) == h
    # the extra keys expand() adds do not enter the hash
    assert config_hash({**base, "study": "x", "trial_id": "y", "variant_label": "z", "resources": {}}) == h
    # every leaf field changes the hash
    changes = {
        ("dataset", "name"): "grid25", ("dataset", "std"): 0.05, ("dataset", "scale"): 3.0,
        ("model", "name"): "mlp2", ("model", "width"): 64, ("model", "depth"): 3, ("model", "z_dim"): 4,
        ("dataset", "image_size"): 64, ("dataset", "base"): "mnist", ("dataset", "stack_seed"): 1,
        ("dataset", "vocab"): 100, ("dataset", "seq_len"): 10,
        ("dataset", "transform"): "rot90",
        ("model", "batch_norm"): False, ("model", "d_batch_norm"): False, ("model", "init"): "xavier",
        ("train", "steps"): 10, ("train", "batch_size"): 8, ("train", "eval_every"): 5,
        ("train", "eval_samples"): 100, ("train", "optimizer"): "sgd", ("train", "lr"): 0.01,
        ("train", "d_lr"): 0.02, ("train", "d_optimizer"): "sgd", ("train", "betas"): [0.0, 0.9], ("train", "momentum"): 0.5,
        ("train", "n_critic"): 5, ("train", "precision"): "bf16", ("variant", "objective"): "wgan", ("variant", "clip"): 0.1,
        ("variant", "gp_weight"): 1.0, ("variant", "lens"): {"schedule": "sine"}, ("train", "nrds_samples"): 100,
        # the stabilizers (issue 25)
        ("variant", "penalty"): {"r1": 1.0}, ("variant", "noise"): {"sigma": 0.1}, ("model", "d_norm"): "spectral",
        ("train", "updates"): "simultaneous", ("train", "ema"): 0.999,
    }
    # a structure's own options are varied on a config of that structure (on another they are refused)
    zoo_changes = {("variant", "lambda_cls"): 0.5, ("variant", "lambda_info"): 0.5,
                   ("variant", "age_lambda"): 0.5, ("variant", "age_mu"): 0.5, ("variant", "age_g_steps"): 3,
                   ("variant", "ali_dropout"): 0.5, ("variant", "n_labels"): 200, ("variant", "lambda_fm"): 0.5,
                   ("variant", "theta0"): 0.5, ("variant", "psi0"): 0.5,
                   ("variant", "dann_lambda"): 0.5, ("variant", "dann_schedule"): "constant",
                   ("variant", "dann_gamma"): 5.0, ("variant", "dann_oracle"): True,
                   ("variant", "cycle_weight"): 5.0, ("variant", "identity_weight"): 0.0,
                   ("variant", "recon_weight"): 0.5, ("variant", "seqgan_pretrain"): 10,
                   ("variant", "seqgan_rollouts"): 4, ("variant", "seqgan_d_steps"): 2,
                   ("variant", "seqgan_adversarial"): False, ("variant", "dupgan_rec"): 0.5,
                   ("variant", "dupgan_adv"): 0.5, ("variant", "dupgan_threshold"): 0.5}
    # the encoder-decoder fields only make sense together: they are varied on an ED config below
    ed_changes = {("variant", "structure"): "ed+gan", ("variant", "task"): "caae", ("variant", "w"): 0.01,
                  ("variant", "g_res_steps"): 1, ("variant", "d_cond"): False,
                  ("variant", "code_prior"): 0.1}
    leaves = {(s, f) for s in ("dataset", "model", "train", "variant") for f in base[s]} - {
        ("dataset", "data_root"), ("dataset", "download"), ("train", "checkpoint_every")}
    assert leaves == set(changes) | set(ed_changes) | set(zoo_changes), "new config field: add it to this test"
    seen = {h}
    for (section, field), value in changes.items():
        cfg = TrialConfig().model_dump(mode="json")
        cfg[section][field] = value
        seen.add(config_hash(cfg))
    cfg = TrialConfig().model_dump(mode="json")
    cfg["seed"] = 1
    seen.add(config_hash(cfg))
    assert len(seen) == len(changes) + 2
    # where the data lives, how often it checkpoints, do not change what the trial is
    for section, field, value in (("dataset", "data_root", "/elsewhere"), ("dataset", "download", True),
                                  ("train", "checkpoint_every", 7)):
        cfg = TrialConfig().model_dump(mode="json")
        cfg[section][field] = value
        assert config_hash(cfg) == h
    # lens sub-fields too
    lens_ids = set()
    for lens in ({}, {"K": 500}, {"lam": 0.5}, {"schedule": "linear"}, {"width": 16}, {"depth": 3},
                 {"recon": "mean"}):
        cfg = TrialConfig().model_dump(mode="json")
        cfg["variant"]["lens"] = lens
        lens_ids.add(config_hash(cfg))
    assert len(lens_ids) == 7
    # each penalty's weight and each instance-noise field
    sub_ids = set()
    for path, value in [*((("penalty", p), 1.0) for p in TrialConfig().variant.penalty.model_dump()),
                        (("noise", "sigma"), 0.2), (("noise", "K"), 10), (("noise", "schedule"), "sine")]:
        cfg = TrialConfig().model_dump(mode="json")
        cfg["variant"][path[0]] = {**(cfg["variant"][path[0]] or {}), path[1]: value}
        if path == ("penalty", "consensus"):
            cfg["train"]["updates"] = "simultaneous"
        sub_ids.add(config_hash(cfg))
    assert len(sub_ids) == 8 and h not in sub_ids
    # encoder-decoder fields, on an ED//GAN config
    ed = TrialConfig.model_validate({"dataset": {"name": "digits"}, "model": {"name": "encdec"},
                                     "variant": {"structure": "ed//gan", "task": "inpaint"}}).model_dump(mode="json")
    ed_ids = {config_hash(ed)}
    for (section, field), value in ed_changes.items():
        cfg = copy.deepcopy(ed)
        cfg[section][field] = value
        ed_ids.add(config_hash(cfg))
    assert len(ed_ids) == len(ed_changes) + 1 and not ed_ids & seen
    from bench import catalog

    for (section, field), value in zoo_changes.items():
        owner = catalog.owners(field)[0]
        data = catalog.structure(owner).datasets[:1] or ("digits",)
        cfg = TrialConfig.model_validate({"dataset": {"name": data[0]}, "model": {"name": "dcgan"},
                                          "variant": {"structure": owner}}).model_dump(mode="json")
        at_default = config_hash(cfg)
        cfg[section][field] = value
        assert config_hash(cfg) != at_default, field
    # fields added later are left out of the hash at their default: existing trial ids do not change
    assert h == "ccdbc1c24008"
    # ... also inside the lens: a lens_toy trial's id as written before `lens.recon` existed
    lens_cfg = TrialConfig.model_validate({
        "dataset": {"name": "ring8", "std": 0.02}, "model": {"name": "mlp", "width": 128, "depth": 2, "z_dim": 2},
        "train": {"steps": 2000, "batch_size": 256, "eval_every": 250, "eval_samples": 2500, "lr": 1e-3},
        "variant": {"objective": "minimax", "lens": {"schedule": "sine", "K": 500}}}).model_dump(mode="json")
    assert config_hash(lens_cfg) == "b1fcc8c071de"


def test_trial_id_ignores_how_a_value_is_written():
    # defaults spelled out or left implicit, 1e-3 or 0.001: the same trial
    implicit = {"train": {"lr": 1e-3}}
    explicit = {"train": {"lr": 0.001, "steps": 2000, "betas": (0.5, 0.999)}, "seed": 0}
    assert config_hash(implicit) == config_hash(explicit) == config_hash(TrialConfig().model_dump(mode="json"))


# ----------------------------------------------------------------------------- flat config
def test_flat_config_same_columns_with_and_without_lens(tmp_path):
    trials = trials_of(write(tmp_path, GRID))
    plain = next(t for t in trials if t["variant"]["lens"] is None)
    lensed = next(t for t in trials if t["variant"]["lens"] is not None)
    a, b = flat_config(plain), flat_config(lensed)
    assert list(a) == list(b)
    assert {"variant.lens.K", "variant.lens.schedule", "train.lr", "seed"} <= set(a)
    assert "variant.lens" not in a
    assert all(a[k] is None for k in a if k.startswith("variant.lens."))
    assert b["variant.lens.K"] in (500, 2000) and b["variant.lens.schedule"] == "sine"
    assert a["train.lr"] == plain["train"]["lr"] and a["seed"] == plain["seed"]
    assert a["train.betas"] == "[0.5, 0.999]"  # lists become one JSON column
    # the flat row carries everything the trial config has
    assert trial_config(plain).model_dump(mode="json")["model"]["width"] == a["model.width"]


# ----------------------------------------------------------------------------- the question block (issue 22)
def test_question_scales_and_co_primary_metrics():
    from bench.schema import QuestionCfg

    q = QuestionCfg(compare="variant.lens", metric="energy_distance", co_primary=["modes_covered", "energy_distance"],
                    secondary=["hq_fraction"])
    assert q.deciding == ["energy_distance", "modes_covered"]  # the primary first, no duplicate
    assert q.metrics == ["energy_distance", "modes_covered", "hq_fraction"]
    # defaults: relative for a non-negative unbounded metric, absolute for a bounded one
    assert [q.scale_of(m) for m in q.metrics] == ["relative", "absolute", "absolute"]
    assert QuestionCfg(compare="x", metric="fid", scale="log").scale_of("fid") == "log"
    per = QuestionCfg(compare="x", metric="fid", co_primary=["recall"], scale={"fid": "absolute"})
    assert (per.scale_of("fid"), per.scale_of("recall")) == ("absolute", "absolute")


def test_published_questions_declare_co_primary_metrics_on_valid_scales():
    """Every shipped study's question names co-primary metrics its trials record, on scales they allow."""
    from bench.metrics import recorded, scale_error

    seen = 0
    for p in sorted((ROOT / "studies").glob("*.yaml")):
        study = load_shipped(p)
        q = study.question
        if q is None:
            continue
        seen += 1
        assert q.co_primary, p.name
        for t in expand(study):
            have = recorded(t["variant"].get("structure", "gan"), t["dataset"]["name"], t["variant"].get("task"),
                            (t.get("train") or {}).get("ema") is not None)
            assert set(q.metrics) <= set(have), (p.name, q.metrics, have)
        assert all(scale_error(m, q.scale_of(m)) is None for m in q.metrics), p.name
    assert seen >= 5
    quick = load_study(QUICKSTART).question
    assert quick.deciding == ["energy_distance", "modes_covered", "hq_fraction", "mode_kl"]
    assert [quick.scale_of(m) for m in quick.deciding] == ["relative", "absolute", "absolute", "relative"]


@pytest.mark.parametrize("question, field, message", [
    ("{compare: variant.lens, metric: energy_distance, scale: log}", "question.scale", "a log scale needs"),
    ("{compare: variant.lens, metric: energy_distance, co_primary: [hq_fraction], scale: {hq_fraction: log}}",
     "question.scale.hq_fraction", "a log scale needs a strictly positive metric; hq_fraction"),
    ("{compare: variant.lens, metric: energy_distance, co_primary: [recall]}", "question.co_primary",
     "'recall' is not recorded by gan trials on ring8"),
    ("{compare: variant.lens, metric: energy_distance, secondary: [l1]}", "question.secondary",
     "'l1' is not recorded by gan trials on ring8"),
    ("{compare: variant.lens, metric: energy_distance, scale: {mode_kl: relative}}", "question.scale.mode_kl",
     "'mode_kl' is not one of the question's metrics"),
])
def test_bad_question_names_its_field(tmp_path, question, field, message):
    p = write(tmp_path, f"name: q\ntrain: {{steps: 10, eval_every: 5}}\nquestion: {question}\n")
    with pytest.raises(StudyError) as e:
        trials_of(p)
    assert (e.value.file, e.value.field) == (str(p), field)
    assert e.value.message.startswith(message), e.value.message


def test_a_question_on_image_metrics_is_checked_against_what_image_trials_record(tmp_path):
    base = ("name: q\ndataset: {name: fashion_mnist}\nmodel: {name: dcgan}\ntrain: {steps: 10, eval_every: 5}\n"
            "question: {compare: variant.lens, metric: fid, co_primary: [kid_mean, precision, recall], scale: %s}\n")
    q = load_study(write(tmp_path, base % "{fid: log}")).question
    assert q.scale_of("fid") == "log" and q.scale_of("kid_mean") == "relative" and q.scale_of("recall") == "absolute"
    with pytest.raises(StudyError) as e:
        trials_of(write(tmp_path, base % "{kid_mean: log}"))  # KID's estimate can be negative
    assert e.value.field == "question.scale.kid_mean"


def test_a_swept_wgan_gp_conv_critic_gets_no_batch_norm(tmp_path):
    """model.d_batch_norm unset resolves per trial: a sweep from ns to wgan-gp on a conv net turns the critic's batch
    norm off for the wgan-gp trials (it used to inherit the base objective's True); explicit stays explicit; an MLP
    (no batch norm in D) keeps its ids."""
    from bench.study import expand, load_study

    def bn(text):
        p = tmp_path / "s.yaml"
        p.write_text(text)
        return {t["variant"]["objective"]: t["model"]["d_batch_norm"] for t in expand(load_study(p))}

    conv = "name: s\ndataset: {name: digits}\nmodel: {name: dcgan%s}\nsweep: {axes: {variant.objective: [ns, wgan-gp]}}\n"
    assert bn(conv % "") == {"ns": True, "wgan-gp": False}
    assert bn(conv % ", d_batch_norm: true") == {"ns": True, "wgan-gp": True}
    mlp = "name: s\nsweep: {axes: {variant.objective: [ns, wgan-gp]}}\n"
    assert bn(mlp) == {"ns": True, "wgan-gp": True}  # as before: the lens_toy trial ids stay
