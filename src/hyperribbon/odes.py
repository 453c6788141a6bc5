"""The dynamical and kinetic models of the compendium.

Sections: van der Pol with polynomial perturbations (chapter 1); sums of exponentials,
enzyme kinetics and SIR (chapter 2). Each model is vectorised over parameter sets.
"""

from __future__ import annotations

# ---- chapter 1: van der Pol -------------------------------------------------------

# ---- chapter 2: exponentials, enzyme kinetics, SIR -------------------------------
