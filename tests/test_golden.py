"""Golden outputs of the export round trips (tests/golden/): every file `edgeseg export` (five
architectures, native and plugin unpool), `edgeseg import` (a foreign uint8 NHWC, low-resolution
model) and `edgeseg deploy` (argmax, in-graph preprocessing) make from fixed inputs has the same
op-type histogram, I/O signature and card facts as the committed golden file, and onnxruntime
gives it the same labels and logits within the tolerance justified in tests/golden/roundtrips.py.

Files are made through the CLI, so a refactor behind these commands keeps this test unchanged
and is caught if it changes what they write. After an intended change:
``python tests/golden/regenerate.py`` (then review and commit the diff)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
from golden.roundtrips import CASES, Workshop, golden_paths, graph_facts, outputs  # noqa: E402
from golden.roundtrips import compare as compare_golden  # noqa: E402

# Over ~5 s each on 2 shared cores (tests/../docs/testing.md): segnet's 117 MB of weights go
# through torch.onnx.export, onnxsim and the verification once per unpool mode.
SLOW = {"segnet-native", "segnet-plugin"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workshop]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as regenerate.py; also faster than two threads on 2 shared cores
    yield Workshop(tmp_path_factory.mktemp("golden"))
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", [pytest.param(c.name, marks=[pytest.mark.slow] if c.name in SLOW else [])
                                  for c in CASES])
def test_round_trip_matches_golden(shop: Workshop, name: str) -> None:
    for path in golden_paths(name):
        assert path.is_file(), f"{path} is missing: run python tests/golden/regenerate.py --only {name}"
    onnx_path: Path = shop.make(name)
    problems = compare_golden(name, graph_facts(onnx_path), outputs(onnx_path))
    assert not problems, "\n".join([*problems, "if the change is intended: python tests/golden/regenerate.py "
                                    f"--only {name}, review git diff tests/golden, commit"])


def test_comparison_flags_what_a_behaviour_change_does() -> None:
    """The tolerance passes the golden result itself and fails a small real change: logits moved by
    a tenth of their spatial std, two classes swapped, one op more."""
    import numpy as np
    from golden.roundtrips import read_golden, spatial_std

    facts, arrays = read_golden("res-segnet-native")
    assert compare_golden("res-segnet-native", facts, arrays) == []
    shifted = {**arrays, "logits": arrays["logits"] + np.float32(0.1 * spatial_std(arrays["logits"]))
               * np.random.default_rng(0).standard_normal(arrays["logits"].shape, dtype=np.float32)}
    assert any("logits differ" in p for p in compare_golden("res-segnet-native", facts, shifted))
    swapped = {"logits": arrays["logits"][[1, 0, 2, 3]], "labels": np.choose(arrays["labels"], [1, 0, 2, 3])
               .astype(np.uint8)}
    assert len(compare_golden("res-segnet-native", facts, swapped)) == 2
    more = {**facts, "ops": {**facts["ops"], "Identity": 1}}
    assert any("ops" in p for p in compare_golden("res-segnet-native", more, arrays))
