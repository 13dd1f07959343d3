"""Sensitivity statistics: pure functions over the trials table (pandas, numpy, scipy only).

Every function takes a trials DataFrame (one row per trial, as `bench.results.load` returns it) or
plain arrays, and returns a DataFrame or a dataclass. Conventions shared by all of them:

- **Metric names.** `metric` is a column (`"final.fid"`, `"best.recall"`) or a bare metric name
  (`"fid"`, which means `final.fid`). Its direction comes from `bench.metrics.INFO`
  (`higher_is_better`); pass `higher_is_better=` for a column INFO does not know.
- **Intervals.** Every interval is a two-sided 95 % interval unless `level` is given. Bootstrap
  intervals are percentile intervals, used only where simulation shows they cover what they claim
  with a few seeds; elsewhere: a mean or paired difference has a Student t interval (`t_interval`), a
  std across seeds a chi-square interval (`std_interval`), a spread across an axis a noncentral-F
  interval of the true spread (`true_spread`): percentile bootstraps of those covered 0-92 %. Bounds are called `<stat>_lo` / `<stat>_hi` (or `lo` / `hi`).
  A mean of a bounded metric (a proportion, modes covered) has its interval clipped to the metric's range
  (`bounded_t_interval` with `bench.metrics.bounds`); a difference is signed and is not clipped.
- **Scales.** A spread across seeds is read on one of `bench.metrics.SCALES` (`bench.stats.scales`):
  `absolute` (the std, in the metric's units), `relative` (std / mean, the coefficient of variation: a std
  that falls with the mean is not more robust) or `log` (the std of the log values). `spread_interval`
  gives the pooled spread and its interval on any of them, `seed_spread` reports all three (`std`, `cv`,
  `log_std`), `seed_spread_comparison(scale=)` compares on one; `bench.metrics.default_scale` says which
  a metric is judged on. Where a scale is undefined for the data (a value <= 0 for log, a mean <= 0 for
  relative) the numbers are NaN and `reason` says why; nothing raises.
- **Reproducible bootstraps.** Every bootstrap takes `seed`. Within a grouped table each group
  draws from its own generator, seeded from `seed` and a stable hash of the group's key, so a
  group's interval does not change when other groups are added or removed.
- **Honest intervals.** An interval is never computed from fewer data than it claims to describe:
  when a quantity has fewer than 2 independent values to resample (a single seed, a single pair, a
  single axis point, ...) its bounds are NaN and the `reason` column says why; it is never reported
  as a zero-width band. A zero-width band that *is* supported by the data (e.g. a constant metric
  over several seeds) is reported with bounds equal to the estimate and a `reason` beginning
  `"degenerate:"`. `reason` is None when nothing needs saying.
- **Which trials count.** Statistics of a metric use trials whose `status` is in `status`
  (default `("ok",)`; `None` = every status) and whose metric value is finite. A diverged trial has
  NaN `final.*` metrics; how often that happens is `success_rate`'s business, so the metric
  statistics report how many trials they left out (`n_trials` vs `n`) instead of inventing values.
- **Config columns.** The trials table stores every config field as a dotted column
  (`train.lr`, `variant.lens.K`) plus `seed`. `config_columns()` returns exactly those: the dotted
  columns other than the `final.*` / `best.*` metrics, and `seed`. The `variant` column (a label) is
  not a config column.

Modules: `common` (metric and config columns, the helpers every statistic shares), `spread`
(`axis_spread`, `spread_ratio`, `spread_comparison`, `true_spread`: sensitivity to an axis), `paired`
(`paired_difference`, `holm`), `seed` (`seed_spread`, `seed_spread_comparison`, `seed_spread_power`:
sensitivity to the seed), `scales` (`spread_interval`, `std_interval`, `transform`, `scale_note`: a spread
on the absolute, relative or log scale), `rates` (`success_rate`, `wilson_interval`, `newcombe_interval`, `tolerance_success`), `budget`
(`expected_best`, `budget_curve`, `overtaking_budget`), `convergence` (steps to a target or to within a fraction of
the run's own best, normalised area under the learning curve), `importance` (a random search's knobs: fANOVA
variance shares, `bench.stats.importance.importance`, and `partial_dependence`, the metric's marginal curve over one
knob from a random-forest surrogate; optuna and scikit-learn, imported lazily). Import the functions from here
(`from bench import stats`).

This package never imports torch or model code.
"""

from bench.stats.budget import budget_curve, expected_best, overtaking_budget
from bench.stats.convergence import convergence
from bench.stats.importance import partial_dependence
from bench.stats.common import LEVEL, bounded_t_interval, config_columns, is_higher_better, metric_column, t_interval
from bench.stats.paired import PairedResult, holm, paired_difference
from bench.stats.scales import scale_note, spread_interval, std_interval, transform
from bench.stats.seed import seed_share, seed_spread, seed_spread_comparison, seed_spread_power
from bench.stats.rates import newcombe_interval, success_rate, tolerance_success, wilson_interval
from bench.stats.spread import SpreadComparison, axis_spread, spread_comparison, spread_ratio, true_spread

__all__ = [
    "LEVEL",
    "PairedResult",
    "SpreadComparison",
    "axis_spread",
    "bounded_t_interval",
    "budget_curve",
    "overtaking_budget",
    "convergence",
    "config_columns",
    "expected_best",
    "holm",
    "is_higher_better",
    "metric_column",
    "paired_difference",
    "partial_dependence",
    "scale_note",
    "seed_share",
    "seed_spread",
    "seed_spread_comparison",
    "seed_spread_power",
    "std_interval",
    "spread_comparison",
    "spread_interval",
    "spread_ratio",
    "success_rate",
    "tolerance_success",
    "t_interval",
    "transform",
    "true_spread",
    "wilson_interval",
    "newcombe_interval",
]
