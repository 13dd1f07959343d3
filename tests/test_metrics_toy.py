import math

import torch

from bench.data.toy import grid25, ring8
from bench.metrics.toy import energy_distance, mixture_modes, toy_metrics
from bench.schema import DatasetCfg


def test_real_data_scores_perfectly():
    for make, k in ((ring8, 8), (grid25, 25)):
        data = make(DatasetCfg(name=make.__name__, std=0.02))
        g = torch.Generator().manual_seed(0)
        real, other = data.sample(5000, g), data.sample(5000, g)
        m = toy_metrics(real, other, data.modes, data.std)
        assert m["modes_covered"] == k
        # P(|x - mu| <= 3 std) for a 2-D isotropic Gaussian = 1 - exp(-4.5) = 0.9889
        assert abs(m["hq_fraction"] - (1 - math.exp(-4.5))) < 0.01
        assert m["mode_kl"] < 0.01
        assert abs(m["energy_distance"]) < 0.01


def test_collapse_to_one_mode():
    data = ring8(DatasetCfg(name="ring8", std=0.02))
    g = torch.Generator().manual_seed(0)
    fake = data.modes[3] + 0.02 * torch.randn(2000, 2, generator=g)
    m = mixture_modes(fake, data.modes, data.std)
    assert m["modes_covered"] == 1
    assert math.isclose(m["mode_kl"], math.log(8), rel_tol=1e-9)
    assert energy_distance(fake, data.sample(2000, g)) > 0.5


def test_no_high_quality_samples_gives_nan_kl():
    data = ring8(DatasetCfg(name="ring8", std=0.02))
    m = mixture_modes(torch.zeros(100, 2), data.modes, data.std)
    assert m["modes_covered"] == 0 and m["hq_fraction"] == 0 and math.isnan(m["mode_kl"])


def test_energy_distance_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 2, generator=g)
    ds = [energy_distance(x, torch.randn(1000, 2, generator=g) + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert ds == sorted(ds) and abs(ds[0]) < 0.02
