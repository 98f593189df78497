"""jaxdebias: debiased classifiers from biased data, in JAX."""

__version__ = "0.1.0"
