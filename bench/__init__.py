"""ganbench: how robust is GAN training to its hyperparameters?"""

__version__ = "0.1.0"
