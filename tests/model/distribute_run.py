"""Run `kwstool.model.train.train` in a fresh process (tests/model/test_distribute.py).

Logical CPU devices and TF_CONFIG take effect only before TensorFlow starts, so distributed
trainings are run here, one process per call: ``python distribute_run.py DATA RUNS_JSON``
where RUNS_JSON is a list of ``[run_dir, {train() keyword arguments}]`` trained in order.
``{"tiny_model": true}`` in the arguments swaps the zoo's model for conftest's tiny CNN, which
has neither dropout nor batch normalisation (both differ per replica by design), so that
several replicas can be compared with one device. ``{"interrupt_at_epoch": E}`` stops the run
with KeyboardInterrupt as epoch E starts (the next entry can resume it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def interrupted_run(data: Path, run_dir: str, args: dict, cut: int) -> None:
    """Train until KeyboardInterrupt is raised while epoch ``cut`` is being prepared (Ctrl-C)."""
    from kwstool.model import trainloop
    from kwstool.model.train import train

    real_dataset = trainloop.epoch_dataset
    calls = []

    def interrupted(*a: object, **k: object) -> object:
        calls.append(1)
        if len(calls) == cut:
            raise KeyboardInterrupt
        return real_dataset(*a, **k)

    trainloop.epoch_dataset = interrupted
    try:
        train(data, run_dir, **args)
    except KeyboardInterrupt:
        return
    finally:
        trainloop.epoch_dataset = real_dataset
    raise AssertionError("the interruption did not happen")


def main() -> int:
    from kwstool.model import zoo
    from kwstool.model.train import train

    data, runs = Path(sys.argv[1]), json.loads(sys.argv[2])
    real_build = zoo.build_model
    for run_dir, kwargs in runs:
        if kwargs.pop("tiny_model", False):
            from conftest import tiny_model

            zoo.build_model = lambda name, num_labels, batch_size=None: tiny_model(num_labels)
        else:
            zoo.build_model = real_build
        cut = kwargs.pop("interrupt_at_epoch", None)
        args = {"model": "tiny_conv", "epochs": 2, "progress": False, **kwargs}
        if cut is not None:
            interrupted_run(data, run_dir, args, cut)
            print(json.dumps({"run_dir": run_dir, "interrupted": cut}), flush=True)
            continue
        result = train(data, run_dir, **args)
        print(json.dumps({"run_dir": run_dir, "history": result.history}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
