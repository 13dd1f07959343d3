"""Names -> implementations, for everything a study file picks by name.

Entries are "module:attribute" strings, imported only when a trial builds them, so validating a
study never imports torch. Adding a variant = one new file + one line here + a study file.
"""

from importlib import import_module

REGISTRY: dict[str, dict[str, str]] = {
    "objective": {
        "minimax": "bench.objectives:minimax",
        "ns": "bench.objectives:ns",
        "lsgan": "bench.objectives:lsgan",
        "wgan": "bench.objectives:wgan",
        "wgan-gp": "bench.objectives:wgan_gp",
        "hinge": "bench.objectives:hinge",
    },
    "dataset": {
        "ring8": "bench.data.toy:ring8",
        "grid25": "bench.data.toy:grid25",
        "fashion_mnist": "bench.data.images:fashion_mnist",
        "mnist": "bench.data.images:mnist",
        "cifar10": "bench.data.images:cifar10",
        "celeba": "bench.data.images:celeba",
        "stacked": "bench.data.images:stacked",
        "digits": "bench.data.images:digits",
    },
    "network": {
        "mlp": "bench.nets.mlp",  # a network module: build(model_cfg, data_dim) -> (G, D), build_lens(...)
        "dcgan": "bench.nets.dcgan",
        "encdec": "bench.nets.encdec",  # ED structures: build_ed(model_cfg, variant_cfg, data_dim, num_classes)
    },
    "structure": {
        "gan": "bench.structures.gan:step",
        "ed+gan": "bench.structures.edgan:step_coupled",
        "ed+gan2": "bench.structures.edgan:step_coupled",  # ed+gan with batch norm (bench.nets.encdec)
        "ed//gan": "bench.structures.edgan:step_decoupled",
    },
}


def check(kind: str, name: str) -> str:
    """Validate a name (used by the study's pydantic validators)."""
    if name not in REGISTRY[kind]:
        raise ValueError(f"unknown {kind} '{name}' (known: {', '.join(sorted(REGISTRY[kind]))})")
    return name


def get(kind: str, name: str):
    """The registered object: a module ("pkg.mod") or an attribute of one ("pkg.mod:attr")."""
    module, _, attr = REGISTRY[kind][check(kind, name)].partition(":")
    return getattr(import_module(module), attr) if attr else import_module(module)
