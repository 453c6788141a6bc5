"""hyperribbon: a reproducible compendium of the information geometry of models.

Modules (one per idea): ``fisher``, ``manifold``, ``odes``, ``inpca``, ``trajectory``,
``training``, ``nets``, ``sampling``, ``vae``, ``data``, ``run``, ``claims``, ``cli``.
"""

__version__ = "0.1.0"
