"""hyperribbon: a reproducible compendium of the information geometry of models.

Three layers (arrows point down):

- ``hyperribbon.compendium``: the machinery — runner, parameters, claims, provenance,
  sweeps (local or Dask), the book, the command line. The science never imports it.
- The science, one module per idea: ``fisher``, ``manifold``, ``odes``, ``inpca``,
  ``embedding``, ``trajectory``, ``nets``, ``training``, ``training_manifold``, ``tasks``,
  ``imprinting``, ``losses``, ``task_space``, ``sampling``, ``jeffreys``, ``linear``,
  ``curvature``, ``scores``, ``vae``, ``expression``.
- The base: ``paths``, ``data`` (the dataset registry), ``util``.
"""

__version__ = "0.1.0"
