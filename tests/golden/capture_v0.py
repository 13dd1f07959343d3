"""Capture golden rows from the current implementation (before the issue-9 refactor)."""
import hashlib, json, math, sys
from pathlib import Path
sys.path.insert(0, "/work/main/tests")
import torch
from bench.schema import TrialConfig
from bench.study import load_study, expand
from bench.trial import run_trial

def cfg(**over):
    base = {"train": {"steps": 100, "eval_every": 50, "batch_size": 64, "eval_samples": 500}, "model": {"width": 32}}
    for k, v in over.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                base.setdefault(k, {})[kk] = vv
        else:
            base[k] = v
    c = TrialConfig.model_validate(base).model_dump(mode="json")
    return {**c, "study": "golden", "trial_id": "t", "variant_label": "x"}

DIG = {"dataset": {"name": "digits", "image_size": 16}}
CASES = {
  "toy_ns": cfg(),
  "toy_lsgan_lens": cfg(variant={"objective": "lsgan", "lens": {"schedule": "sine", "K": 60}}, seed=1),
  "toy_wgangp_lens": cfg(variant={"objective": "wgan-gp", "lens": {"schedule": "linear", "K": 80}}, train={"n_critic": 3, "steps": 60, "eval_every": 30}),
  "toy_wgan_grid": cfg(dataset={"name": "grid25"}, variant={"objective": "wgan"}, train={"optimizer": "rmsprop", "lr": 5e-4, "n_critic": 5, "steps": 60, "eval_every": 30}),
  "toy_hinge_sgd": cfg(variant={"objective": "hinge"}, train={"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}, seed=3),
  "toy_minimax_const": cfg(variant={"objective": "minimax", "lens": {"schedule": "constant", "lam": 0.5}}),
  "toy_diverged": cfg(train={"optimizer": "sgd", "lr": 1e12}, variant={"objective": "lsgan"}),
  "dcgan_ns_lens": cfg(**DIG, model={"name": "dcgan", "width": 8, "z_dim": 16, "init": "xavier"}, variant={"lens": {"K": 20, "width": 4, "depth": 2}}, train={"steps": 30, "eval_every": 15, "batch_size": 32, "eval_samples": 200}),
  "dcgan_wgangp": cfg(**DIG, model={"name": "dcgan", "width": 8, "z_dim": 16}, variant={"objective": "wgan-gp"}, train={"steps": 20, "eval_every": 10, "batch_size": 32, "eval_samples": 200, "n_critic": 2, "lr": 1e-4, "betas": [0.0, 0.9]}),
  "ed_coupled_inpaint": cfg(**DIG, model={"name": "encdec", "width": 8, "z_dim": 16}, variant={"structure": "ed+gan", "task": "inpaint", "w": 0.1}, train={"steps": 20, "eval_every": 10, "batch_size": 32, "eval_samples": 100, "nrds_samples": 50}),
  "ed_coupled2_down": cfg(**DIG, model={"name": "encdec", "width": 8, "z_dim": 16}, variant={"structure": "ed+gan2", "task": "downsample", "w": 0.01}, train={"steps": 20, "eval_every": 10, "batch_size": 32, "eval_samples": 100, "nrds_samples": 50, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "d_optimizer": "adam"}),
  "ed_decoupled_caae_prior": cfg(**DIG, model={"name": "encdec", "width": 8, "z_dim": 16}, variant={"structure": "ed//gan", "task": "caae", "w": 1.0, "code_prior": 1.0}, train={"steps": 20, "eval_every": 10, "batch_size": 32, "eval_samples": 100, "nrds_samples": 50}),
}

def canon(rows):
    out = []
    for r in rows:
        d = {}
        for k, v in r.items():
            if k in ("wall_seconds", "torch_threads", "ray_node_id"):
                continue
            if k == "grids":
                v = {g: hashlib.sha1(b.encode()).hexdigest() for g, b in v.items()}
            elif k == "outputs":
                import base64, io, numpy as np
                z = np.load(io.BytesIO(base64.b64decode(v)))
                v = {n: hashlib.sha1(np.ascontiguousarray(z[n]).tobytes()).hexdigest() for n in sorted(z.files)}
            elif k == "samples":
                v = hashlib.sha1(json.dumps(v).encode()).hexdigest()
            elif isinstance(v, float) and math.isnan(v):
                v = "nan"
            d[k] = v
        out.append(d)
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    golden = {}
    for name, c in CASES.items():
        rows = []
        run_trial(c, rows.append)
        golden[name] = {"config": c, "rows": canon(rows)}
        print(name, rows[-1]["status"], {k: rows[-1].get(k) for k in ("energy_distance", "fid", "l1")})
    Path("/work/main/tests/golden/trials.json").write_text(json.dumps(golden, indent=1, sort_keys=True))
    ids = {}
    for p in sorted(Path("/work/main/studies").glob("*.yaml")):
        s = load_study(p)
        ids[p.name] = sorted(t["trial_id"] for t in expand(s))
    Path("/work/main/tests/golden/trial_ids.json").write_text(json.dumps(ids, indent=1))
