"""What an executed notebook says about how it was made (shown at its end)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

PROVENANCE_MIME = "application/vnd.hyperribbon.provenance+json"
#: The code of the cell the runner appends to every executed notebook.
PROVENANCE_SOURCE = ("from hyperribbon.compendium.provenance import show_provenance\n\n"
                     "show_provenance()")


def collect() -> dict:
    """Provenance of the current kernel: the runner's record (``HYPERRIBBON_RUN``: notebook,
    profile, parameters, git commit and dirty flag, start time), versions, device, and the
    data files verified by :mod:`hyperribbon.data` in this process."""
    import numpy

    from .. import __version__
    from ..data import verified_files

    run = json.loads(os.environ.get("HYPERRIBBON_RUN", "{}") or "{}")
    try:
        import torch

        torch_v = torch.__version__
        if torch.cuda.is_available():
            device = f"cuda: {torch.cuda.get_device_name(0)}"
        else:
            device = f"cpu: {platform.processor() or platform.machine()}, " \
                     f"{torch.get_num_threads()} threads"
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_v, device = "absent", "cpu"
    t0 = run.pop("t0", None)
    return {
        **run,
        "hyperribbon": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": numpy.__version__,
        "torch": torch_v,
        "device": device,
        "data": verified_files(),
        "wall_s": round(time.time() - t0, 2) if t0 else None,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def show_provenance() -> None:
    """Display the provenance as a table and emit it for the runner to store."""
    from IPython.display import display

    prov = collect()
    commit = prov.get("commit", "not run by `hyperribbon run`")
    if prov.get("dirty"):
        commit += " (with uncommitted changes)"
    rows = [
        ("git commit", commit),
        ("profile", prov.get("profile", "?")),
        ("parameters", ", ".join(f"{k}={v!r}" for k, v in prov.get("parameters", {}).items())),
        ("versions", f"hyperribbon {prov['hyperribbon']}, python {prov['python']}, "
                     f"numpy {prov['numpy']}, torch {prov['torch']}"),
        ("device", prov["device"]),
        ("data (sha256)", "; ".join(f"{k}: {v[:16]}…" for k, v in prov["data"].items())
         or "none"),
        ("wall time", f"{prov['wall_s']} s" if prov["wall_s"] is not None else "?"),
    ]
    md = "**Provenance of this run**\n\n| | |\n|---|---|\n" + "\n".join(
        f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    display({"text/markdown": md, "text/plain": md, PROVENANCE_MIME: prov}, raw=True)
