"""Rewrite the golden files of the export round trips: ``python tests/golden/regenerate.py``.

Run it after an intended change of what `edgeseg export/import/deploy` write (a new op, another
default, changed numbers), review ``git diff tests/golden/*.json``, and commit the files with the
change that caused them. Each file is written atomically (temporary file, then rename), so an
interrupted run leaves the previous golden file or the new one, never half of one.
``--only NAME`` (repeatable) regenerates some cases (the files they read are made, not written).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from roundtrips import CASES, Workshop, graph_facts, outputs, write_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", action="append", choices=[c.name for c in CASES], default=[],
                        metavar="NAME", help="regenerate this case only (repeatable)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # as the test runs; also the faster setting on 2 shared cores
    with tempfile.TemporaryDirectory(prefix="edgeseg-golden-") as tmp:
        shop = Workshop(Path(tmp))
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            path = shop.make(case.name)
            write_golden(case.name, graph_facts(path), outputs(path))
            print(f"wrote tests/golden/{case.name}.json and .npz", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
