"""The compendium machinery: the runner (jupytext → papermill per profile, reuse keyed on
what a notebook depends on), parameter specs, claims, provenance, sweeps, the book and
the command line. It sits above the science (``hyperribbon.fisher``, ``vae``, ...) and
the base (``paths``, ``data``, ``util``); the science never imports it.

A chapter notebook needs only what is exported here::

    from hyperribbon.compendium import claim, glue_figure, glue_values, record_spectrum
"""

from .atlas import record_spectrum
from .claims import (
    claim,
    errorbar_mean_se,
    glue,
    glue_figure,
    glue_values,
    mean_bound,
    mean_se,
)
from .interactive import glue_3d

__all__ = ["claim", "errorbar_mean_se", "glue", "glue_3d", "glue_figure", "glue_values",
           "mean_bound", "mean_se", "record_spectrum"]
