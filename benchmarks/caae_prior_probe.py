"""Probe: does CAAE's code prior (variant.code_prior) make the decoder use the label? One ed+gan trial of
studies/edgan_caae_fmnist.yaml (w = 0.01, Adam, seed 0) in this process, with the given prior weight and
steps. Usage: python -m benchmarks.caae_prior_probe WEIGHT [STEPS]. Figures in docs/findings.md."""
import sys, torch
torch.set_num_threads(1)
from bench.study import load_study, expand
from bench.trial import run_trial
s = load_study("studies/edgan_caae_fmnist.yaml")
t = [t for t in expand(s) if t["variant"]["structure"] == "ed+gan" and t["variant"]["w"] == 0.01
     and t["train"]["optimizer"] == "adam" and t["seed"] == 0][0]
t["variant"]["code_prior"] = float(sys.argv[1]); t["train"]["steps"] = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
import tempfile
last = run_trial(t, lambda r: None, tempfile.mkdtemp())[0]
print("code_prior", sys.argv[1:], {k: round(last[k], 3) for k in ("l1", "fid", "swap_accuracy")})
