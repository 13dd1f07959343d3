"""The Ray cluster launcher files at the repo root (every cluster*.yaml), checked with Ray's own code and
without network.

Validation, as `ray up` does it:
- on-premises ("local" provider): `ray.autoscaler._private.commands._bootstrap_config`, the function `ray up`
  starts with: `prepare_config` (the local provider's node type, Ray's defaults, setup commands merged per
  node kind), the provider's resource fill-out, `validate_config` (Ray's JSON schema and its own checks) and
  the provider's `bootstrap_config` -- all local for this provider;
- cloud providers (aws, gcp): there `_bootstrap_config` calls the cloud (the AWS provider lists EC2 instance
  types to fill out missing node resources, then sets up IAM roles, key pairs, subnets and security groups),
  so these are checked with `prepare_config` + `validate_config` on that filled-out config, which is all of
  the validation that needs no cloud; their node types state their resources, so there is nothing to fill.

Then the commands the prepared config would run on the head and on the workers: every `ray` (and `pip`)
is the checkout venv's, `ray stop` before `ray start`; token auth stays on and the token reaches every
node; the checkout syncs through Ray's own rsync filter without .venv or results (a real rsync run, where
rsync is installed); the venv is built by `make` with the Python pyproject.toml asks for; Fashion-MNIST has
a data folder that `make` and the trials share; and every command parses as bash.
"""

import copy
import os
import re
import shlex
import shutil
import subprocess
import tomllib

import pytest
import yaml

from conftest import ROOT

CONFIGS = sorted(ROOT.glob("cluster*.yaml"))
TOKEN_FILE = "~/.ray/auth_token"  # Ray 2.60's default token path (authentication_token_setup.py)
VENV_PROGRAMS = {"ray", "pip", "pip3", "ganbench"}
WRAPPERS = {"sudo", "-n", "env", "nohup", "exec", "time", "command"}  # words before the program they run
COMMAND_LISTS = ("initialization_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands")


def _load(path):
    return yaml.safe_load(path.read_text())


def _prepared(path) -> dict:
    """The config as Ray prepares it (Ray's defaults merged in; setup_commands folded into the head's and
    the workers' setup lists), validated by Ray; see the module docstring for the local/cloud split."""
    from ray.autoscaler._private.commands import _bootstrap_config
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _load(path)
    if raw["provider"]["type"] == "local":
        return _bootstrap_config(raw, no_config_cache=True)
    cfg = prepare_config(raw)
    validate_config(cfg)
    return cfg


def _checkout(cfg) -> str:
    """The remote folder the local checkout (".") is synced to."""
    dests = [remote for remote, local in cfg["file_mounts"].items() if local in (".", "./")]
    assert len(dests) == 1, f"exactly one file_mounts entry must sync the checkout '.': {cfg['file_mounts']}"
    return dests[0].rstrip("/")


def _simple_commands(line: str) -> list[tuple[dict, list[str]]]:
    """A shell line as (environment, words) per simple command: `A=1 B=2 prog args` gives ({A, B}, [prog,
    args]); `export A=1` carries A into the rest of the line; redirection targets are dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    exported, out, words, skip_next = {}, [], [], False
    for tok in lex:
        if tok and set(tok) <= set("();<>|&"):
            if "<" in tok or ">" in tok:
                skip_next = True
                continue
            out.append(words)
            words = []
        elif skip_next:
            skip_next = False
        else:
            words.append(tok)
    out.append(words)
    result = []
    for words in filter(None, out):
        words = [w for w in words if w not in ("{", "}")]
        env = dict(exported)
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            k, v = words.pop(0).split("=", 1)
            env[k] = v
        if words[:1] == ["export"]:
            exported.update(w.split("=", 1) for w in words[1:] if "=" in w)
        if words:
            result.append((env, words))
    return result


def _home(path: str) -> str:
    return path.replace("$HOME/", "~/")


def _commands(cfg) -> dict[str, list[str]]:
    """Every command list the prepared config runs (node types may override the setup lists)."""
    lists = {name: list(cfg.get(name) or []) for name in COMMAND_LISTS}
    for node_type, spec in cfg["available_node_types"].items():
        for name in ("initialization_commands", "worker_setup_commands"):
            if name in spec:
                lists[f"{node_type}.{name}"] = list(spec[name])
    return lists


def _ray_calls(lines: list[str], checkout: str) -> list[tuple[dict, list[str]]]:
    """(environment, [subcommand, args...]) of each call of the venv's ray in these lines, in order."""
    ray = f"{checkout}/.venv/bin/ray"
    return [(env, words[1:]) for line in lines for env, words in _simple_commands(line) if _home(words[0]) == ray]


def test_there_are_cluster_configs():
    names = {p.name for p in CONFIGS}
    assert {"cluster.yaml", "cluster-aws.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_ray_validates_the_config(path):
    cfg = _prepared(path)
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert cfg["cluster_synced_files"] == []  # Ray's defaults were merged in
    if cfg["provider"]["type"] != "local":
        for name, spec in cfg["available_node_types"].items():
            assert "CPU" in spec["resources"], f"{name}: state the resources; autodetecting them calls the cloud"


def test_ray_validation_rejects_a_broken_config():
    """The validation above is live: Ray's schema refuses a misspelt field and a wrong type."""
    import jsonschema

    from ray.autoscaler._private.util import prepare_config, validate_config

    for path in CONFIGS:
        bad = _load(path)
        bad["setup_command"] = bad.pop("setup_commands")
        with pytest.raises(jsonschema.ValidationError):
            validate_config(prepare_config(bad))
        bad = _load(path)
        bad["rsync_filter"] = ".gitignore"
        with pytest.raises(jsonschema.ValidationError):
            validate_config(prepare_config(bad))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_ray_and_pip_is_the_venvs(path):
    cfg = _prepared(path)
    venv_bin = f"{_checkout(cfg)}/.venv/bin/"
    for name, lines in _commands(cfg).items():
        for line in lines:
            for _, words in _simple_commands(line):
                prog = next((w for w in words if w not in WRAPPERS and "=" not in w), "")
                bare = [w for w in words if w in VENV_PROGRAMS]  # e.g. `ray stop`, `sudo pip`, `which ray`
                if prog.rsplit("/", 1)[-1] in VENV_PROGRAMS or bare:
                    assert _home(prog).startswith(venv_bin) and not bare, f"{path.name} {name}: not the venv's: {line}"
    for name, kind in (("head_start_ray_commands", ["--head"]), ("worker_start_ray_commands", [])):
        calls = [args for _, args in _ray_calls(cfg[name], _checkout(cfg))]
        assert [a[0] for a in calls] == ["stop", "start"], f"{path.name} {name}: venv ray stop, then start: {calls}"
        assert all(flag in calls[1] for flag in kind)
    worker_start = _ray_calls(cfg["worker_start_ray_commands"], _checkout(cfg))[1][1]
    assert any(a.startswith("--address=$RAY_HEAD_IP:") for a in worker_start)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_token_auth_is_on_and_the_token_reaches_every_node(path):
    """Ray 2.60 reads the token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, and `ray start`
    (head or worker) never creates one: with RAY_AUTH_MODE=token and no token it stops with
    AuthenticationError. file_mounts go to the head from `ray up`, and the head's autoscaler syncs the same
    remote paths to every worker it starts (commands.py rewrites them remote -> remote)."""
    cfg = _prepared(path)
    token_mounted = TOKEN_FILE in cfg["file_mounts"]
    if token_mounted:
        assert cfg["file_mounts"][TOKEN_FILE] == TOKEN_FILE, "mount the user's own ~/.ray/auth_token"
    for name in ("head_start_ray_commands", "worker_start_ray_commands"):
        env, _ = next((e, a) for e, a in _ray_calls(cfg[name], _checkout(cfg)) if a[0] == "start")
        assert env.get("RAY_AUTH_MODE") == "token", f"{path.name} {name}: ray start without RAY_AUTH_MODE=token"
        assert token_mounted or env.get("RAY_AUTH_TOKEN"), f"{path.name} {name}: the token does not reach it"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_checkout_sync_filters_through_gitignore(path):
    cfg = _prepared(path)
    _checkout(cfg)
    assert ".gitignore" in cfg["rsync_filter"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".venv/" in ignored and "/results/*" in ignored


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_rsync_with_rays_filter_leaves_venv_and_results_home(path, tmp_path):
    """A real rsync with the arguments Ray's SSH command runner builds from the config, from a checkout
    with a venv, its stamp, results and caches to an empty folder (the node)."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    cfg = _prepared(path)
    src, dst = tmp_path / "checkout", tmp_path / "node"
    files = [".gitignore", "Makefile", "bench/trial.py", ".venv/.installed", ".venv/bin/python",
             "results/.gitkeep", "results/quickstart/trials.parquet", "bench/__pycache__/trial.cpython-311.pyc",
             "build/lib/x.py", ".cache/x", "ganbench.egg-info/PKG-INFO"]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text("x")
    shutil.copy(ROOT / ".gitignore", src / ".gitignore")
    dst.mkdir()
    options = {"rsync_exclude": cfg["rsync_exclude"], "rsync_filter": cfg["rsync_filter"]}
    args = SSHCommandRunner._create_rsync_filter_args(None, options)  # uses no instance state
    subprocess.run(["rsync", "-avz", *args, f"{src}/", f"{dst}/"], check=True, capture_output=True)
    assert _files(dst) == {".gitignore", "Makefile", "bench/trial.py"}
    # `ray rsync-down CONFIG '~/ganbench/results/STUDY/' ...` applies the same filter: it brings everything
    (src / "results/quickstart/ray/run/checkpoint").mkdir(parents=True)
    (src / "results/quickstart/ray/run/checkpoint/model.pt").write_text("x")
    home = tmp_path / "home"
    subprocess.run(["rsync", "-avz", *args, f"{src}/results/quickstart/", f"{home}/"], check=True, capture_output=True)
    assert _files(home) == {"trials.parquet", "ray/run/checkpoint/model.pt"}


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_setup_builds_the_venv_with_make(path):
    cfg = _prepared(path)
    checkout = _checkout(cfg)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = "python" + re.match(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1)
    ray_pin = next(d.split("==")[1] for d in project["dependencies"] if d.startswith("ray["))
    for name in ("head_setup_commands", "worker_setup_commands"):
        lines = [_simple_commands(line) for line in cfg[name]]
        calls = [c for line in lines for c in line]
        made = [i for i, (_, words) in enumerate(calls) if words[0] == "make"]
        assert made, f"{path.name} {name}: no make"
        env, words = calls[made[0]]
        assert ".venv/.installed" in words and env.get("PY") == python, f"{path.name} {name}: {env} {words}"
        line = next(line for line in lines if (env, words) in line)
        assert line[line.index((env, words)) - 1][1] == ["cd", checkout], f"{path.name} {name}: make not in {checkout}"
        uses = [i for i, (_, words) in enumerate(calls) if _home(words[0]).startswith(f"{checkout}/.venv/")]
        assert all(i > made[0] for i in uses), f"{path.name} {name}: the venv is used before make builds it"
        pins = [w.split("==")[1] for _, words in calls for w in words if re.match(r"ray\[[\w,]+\]==", w)]
        assert all(p == ray_pin for p in pins), f"{path.name} {name}: Ray {pins} but pyproject pins {ray_pin}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_fashion_mnist_folder_is_shared_by_make_and_the_trials(path):
    """`make` installs Fashion-MNIST as root or with passwordless sudo, else unpacks it into $GANBENCH_DATA;
    the trials (Ray workers, started by `ray start`) must look in the same folder."""
    cfg = _prepared(path)
    make_env = next(env for line in cfg["worker_setup_commands"] for env, words in _simple_commands(line)
                    if words[0] == "make")
    data = make_env.get("GANBENCH_DATA")
    assert data, f"{path.name}: make runs without GANBENCH_DATA"
    for name in ("head_start_ray_commands", "worker_start_ray_commands"):
        env = next(e for e, a in _ray_calls(cfg[name], _checkout(cfg)) if a[0] == "start")
        assert env.get("GANBENCH_DATA") == data, f"{path.name} {name}: the trials would not see {data}"


STUBS = {  # stand-ins on PATH for `make data`: they log their calls and do what $STATE allows
    "id": 'echo "$FAKE_UID"',
    "sudo": '[ "$1" = -n ] && shift; [ -e "$STATE/sudo_ok" ] || exit 1; echo "sudo $*" >> "$STATE/log"; exec "$@"',
    "apt-get": """echo "apt-get $*" >> "$STATE/log"
case " $* " in
  *" download "*) [ -e "$STATE/pkg.deb" ] && cp "$STATE/pkg.deb" ./dataset-fashion-mnist_1_all.deb ;;
  *" install "*) [ -e "$STATE/apt_ok" ] && mkdir -p "$FMNIST" && touch "$FMNIST/train-images-idx3-ubyte.gz" ;;
  *) [ -e "$STATE/apt_ok" ] ;;
esac""",
}
IDX = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.skipif(not (shutil.which("make") and shutil.which("dpkg-deb")), reason="needs make and dpkg")
@pytest.mark.parametrize("uid, allowed, data_var, expect", [
    ("0", {"apt_ok"}, False, "installed"),                          # root: apt-get
    ("1000", {"apt_ok", "sudo_ok"}, False, "installed via sudo"),   # passwordless sudo
    ("1000", set(), True, "unpacked"),                              # no sudo: the package unpacked, no root
    ("0", set(), True, "unpacked"),                                 # apt-get install failed
    ("1000", set(), False, "warning"),                              # nothing possible: a warning, no failure
])
def test_make_data_step(tmp_path, uid, allowed, data_var, expect):
    """The Makefile's Fashion-MNIST step as root, with `sudo -n`, and unpacking the Debian package into
    $GANBENCH_DATA without root; it never fails the build. apt-get, sudo and id are stubs (no network);
    the package is a real .deb built here and unpacked by the real dpkg."""
    state, stubs, fmnist, data = tmp_path / "state", tmp_path / "bin", tmp_path / "sys/fashion-mnist", tmp_path / "d"
    state.mkdir(), stubs.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    for f in allowed:
        (state / f).touch()
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text("Package: dataset-fashion-mnist\nVersion: 1\nArchitecture: all\n"
                                        "Maintainer: t <t@t>\nDescription: t\n")
    (pkg / str(fmnist).lstrip("/")).mkdir(parents=True)
    for f in IDX:
        (pkg / str(fmnist).lstrip("/") / f).write_text(f)
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(state / "pkg.deb")], check=True, capture_output=True)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STATE": str(state), "FAKE_UID": uid,
           "FMNIST": str(fmnist)}
    env.pop("GANBENCH_DATA", None)
    if data_var:
        env["GANBENCH_DATA"] = str(data)
    p = subprocess.run(["make", "-s", "-C", str(ROOT), "data", f"FMNIST={fmnist}"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    log = (state / "log").read_text() if (state / "log").exists() else ""
    if expect.startswith("installed"):
        assert (fmnist / IDX[0]).exists() and "install -y dataset-fashion-mnist" in log
        assert ("sudo " in log) == expect.endswith("sudo"), log
    elif expect == "unpacked":
        assert sorted(f.name for f in (data / "fashion-mnist").iterdir()) == sorted(IDX), log
        assert "download dataset-fashion-mnist" in log
    else:
        assert "warning: no Fashion-MNIST" in p.stdout and "GANBENCH_DATA" in p.stdout
        assert not (fmnist.exists() or data.exists())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_command_parses_as_bash(path):
    cfg = _prepared(path)
    for name, lines in _commands(cfg).items():
        for line in lines:
            p = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
            assert p.returncode == 0, f"{path.name} {name}: {line}\n{p.stderr}"


@pytest.mark.parametrize("path", [p for p in CONFIGS if _load(p)["provider"]["type"] != "local"],
                         ids=lambda p: p.name)
def test_cloud_config_autoscales_gpu_workers_on_spot(path):
    cfg = _prepared(path)
    types = copy.deepcopy(cfg["available_node_types"])
    head = types.pop(cfg["head_node_type"])
    assert not head["resources"].get("GPU"), "a CPU head"
    gpu = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu, "no GPU worker type"
    for name, t in gpu.items():
        assert t["min_workers"] == 0 and t["max_workers"] >= 1, f"{name}: autoscale from 0"
        nc = t["node_config"]
        sched = nc.get("scheduling") or {}  # gcp: a dict, or a list of them
        sched = {k: v for d in sched for k, v in d.items()} if isinstance(sched, list) else sched
        spot = (nc.get("InstanceMarketOptions", {}).get("MarketType") == "spot"  # aws
                or sched.get("preemptible") is True or sched.get("provisioningModel") == "SPOT")  # gcp
        assert spot, f"{name}: not a spot/preemptible instance"
