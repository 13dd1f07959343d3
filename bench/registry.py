"""Names -> implementations, for everything a study file picks by name. The study schema accepts
exactly the names listed here (bench.schema validates against them), so adding a variant is one new
file + one line here + a study file.

Entries are "module" or "module:attribute" strings, imported only when a trial builds them.
"""

from importlib import import_module

REGISTRY: dict[str, dict[str, str]] = {
    # a training structure: a module with check / build / batch / step / Evaluate (bench.structures) and a DECLARE of
    # its options, losses, metrics and report sections (bench.catalog reads it without importing the module)
    "structure": {
        "gan": "bench.structures.gan",          # G from noise; the tempered lens is part of it
        "ed+gan": "bench.structures.edgan",     # encoder-decoder structures (Zhang, Song, Qi 2018)
        "ed+gan2": "bench.structures.edgan",    # ed+gan with batch norm (bench.nets.encdec)
        "ed//gan": "bench.structures.edgan",
        "cgan": "bench.structures.cgan",        # G and D see the class label (Mirza & Osindero 2014)
        "acgan": "bench.structures.cgan",       # D with an auxiliary class head (Odena et al. 2017)
        "infogan": "bench.structures.infogan",  # categorical + continuous codes, Q head (Chen et al. 2016)
        "age": "bench.structures.age",          # encoder-generator game on the code prior, no D (Ulyanov et al. 2018)
        "ali": "bench.structures.ali",          # encoder + joint D on (x, z) pairs (ALI / BiGAN, 2017)
        "sgan": "bench.structures.sgan",        # (K+1)-class D, feature matching, few labels (Salimans et al. 2016)
        "dirac": "bench.structures.dirac",      # G(z) = theta, D(x) = psi x on a point mass (Mescheder et al. 2018)
        "dann": "bench.structures.dann",        # domain-adversarial training, gradient reversal (Ganin et al. 2016)
        "cyclegan": "bench.structures.translation",  # unpaired translation, cycle consistency (Zhu et al. 2017)
        "discogan": "bench.structures.translation",  # unpaired translation, reconstruction loss (Kim et al. 2017)
        "seqgan": "bench.structures.seqgan",    # token sequences by policy gradient and rollouts (Yu et al. 2017)
        "dupgan": "bench.structures.dupgan",    # domain adaptation by duplex, class-aware discriminators (Hu et al. 2018)
    },
    # an Objective (bench.objectives): losses over D's outputs on real and fake
    "objective": {
        "minimax": "bench.objectives.classic:minimax",
        "ns": "bench.objectives.classic:ns",
        "lsgan": "bench.objectives.classic:lsgan",
        "wgan": "bench.objectives.classic:wgan",
        "wgan-gp": "bench.objectives.classic:wgan_gp",
        "hinge": "bench.objectives.classic:hinge",
        "ragan": "bench.objectives.relativistic:ragan",
        "ralsgan": "bench.objectives.relativistic:ralsgan",
        "rpgan": "bench.objectives.relativistic:rpgan",
        "r3gan": "bench.objectives.relativistic:r3gan",   # rpgan + R1 + R2 at gp_weight (Huang et al. 2024)
    },
    # penalties (bench.penalties): weights in variant.penalty; gp, dragan, r1, r2 act on D's loss through its input
    # gradients, consensus on both players' losses through their gradient field
    "penalty": {
        "gp": "bench.penalties:gp",
        "dragan": "bench.penalties:dragan",
        "r1": "bench.penalties:r1",
        "r2": "bench.penalties:r2",
        "consensus": "bench.penalties:consensus",
    },
    "dataset": {
        "ring8": "bench.data.toy:ring8",
        "dirac": "bench.data.toy:dirac",            # a point mass at 0: the Dirac GAN's data (structure dirac)
        "grid25": "bench.data.toy:grid25",
        "fashion_mnist": "bench.data.images:fashion_mnist",
        "mnist": "bench.data.images:mnist",
        "cifar10": "bench.data.images:cifar10",
        "celeba": "bench.data.images:celeba",
        "stacked": "bench.data.images:stacked",
        "domains": "bench.data.domains:domains",    # two unpaired domains A, B = T(A) (translation, adaptation)
        "oracle": "bench.data.sequences:oracle",    # token sequences of an LSTM oracle (SeqGAN's synthetic task)
        "digits": "bench.data.images:digits",
    },
    # a network module: build(model_cfg, data_dim) -> (G, D), build_lens(...) (encdec: build_ed)
    "network": {
        "mlp": "bench.nets.mlp",
        "dcgan": "bench.nets.dcgan",
        "encdec": "bench.nets.encdec",
    },
    # lambda(t, K, lam) of the lens (bench.schedules)
    "schedule": {
        "sine": "bench.schedules:sine",
        "linear": "bench.schedules:linear",
        "constant": "bench.schedules:constant",
        "none": "bench.schedules:none",
        "dann": "bench.schedules:dann",             # DANN's ramp from 0 up to lam (Ganin et al. 2016)
    },
    "optimizer": {
        "adam": "torch.optim:Adam",
        "rmsprop": "torch.optim:RMSprop",
        "sgd": "torch.optim:SGD",
    },
    # the ED structures' conditional image tasks: clean image -> network input (bench.data.tasks)
    "task": {
        "inpaint": "bench.data.tasks:inpaint",
        "downsample": "bench.data.tasks:downsample",
        "caae": "bench.data.tasks:identity",
    },
    # weight initialisation schemes of the convolutional networks (bench.nets.dcgan.init_weights)
    "init": {
        "default": "bench.nets.dcgan:init_weights",
        "xavier": "bench.nets.dcgan:init_weights",
        "dcgan": "bench.nets.dcgan:init_weights",
    },
}

TOY_DATASETS = ("ring8", "grid25")  # 2-D point sets
POINT_DATASETS = ("dirac", "oracle")  # no sample metrics: only a structure that names them trains there, and measures
# its own (the Dirac GAN's point mass; SeqGAN's token sequences)
# every other dataset is images
GREY_DATASETS = ("fashion_mnist", "mnist", "digits")  # single-channel image sets: what `stacked` can stack
DOMAIN_TRANSFORMS = ("invert", "rot90")  # the `domains` set's T (bench.data.domains.TRANSFORMS)


def names(kind: str) -> list[str]:
    return sorted(REGISTRY[kind])


def check(kind: str, name: str) -> str:
    """Validate a name (used by the study's pydantic validators)."""
    if name not in REGISTRY[kind]:
        raise ValueError(f"unknown {kind} '{name}' (known: {', '.join(names(kind))})")
    return name


def get(kind: str, name: str):
    """The registered object: a module ("pkg.mod") or an attribute of one ("pkg.mod:attr")."""
    module, _, attr = REGISTRY[kind][check(kind, name)].partition(":")
    return getattr(import_module(module), attr) if attr else import_module(module)


# what a plug-in must have, by kind: attribute -> what it is (checked when a study is validated)
INTERFACE = {
    "structure": {"check": "check(cfg)", "build": "build(pack, data, streams, device)",
                  "batch": "batch(pack, data, gens, device)", "step": "step(nets, batch, pack, t)",
                  "Evaluate": "Evaluate(pack, data, gens, device)(nets, final, alive)"},
    "objective": {"d": "d(r, f): D's loss", "g": "g(r, f): G's loss", "lens": "lens(r, f): the lens' loss"},
}


def plugin(kind: str, name: str):
    """`get`, plus the interface check of INTERFACE: a broken plug-in is a ValueError naming the registry entry
    and what is missing or failing ("bench.structures.foo: no step(nets, batch, pack, t)"), never a traceback
    from inside a trial."""
    entry = REGISTRY[kind][check(kind, name)]
    try:
        obj = get(kind, name)
    except Exception as e:  # noqa: BLE001 - any import-time error is the plug-in's
        raise ValueError(f"{kind} '{name}' ({entry}) cannot be imported: {type(e).__name__}: {e}") from None
    missing = [f"{a}: {what}" for a, what in INTERFACE.get(kind, {}).items() if not callable(getattr(obj, a, None))]
    if missing:
        raise ValueError(f"{kind} '{name}' ({entry}) lacks " + "; ".join(missing))
    return obj
