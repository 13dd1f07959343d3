"""ganbench: how robust is GAN training to its hyperparameters?

From Python: `bench.load_study`, `bench.run`, `bench.load_results` (and `bench.api.report`, since
`bench.report` is the report package): bench.api. They load on first use, so `import bench` stays light
(no torch, no Ray)."""

try:  # one version, pyproject's, as installed
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("ganbench")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_API = ("load_study", "run", "load_results", "log_results")


def __getattr__(name):  # PEP 562: bench.run etc. import bench.api only when used
    if name in _API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
