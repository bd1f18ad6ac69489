"""Decoder training (Huang & Belongie 2017): data, losses, loop, checkpoints, export.

Imports only torch, numpy, safetensors and OpenCV or PIL (torchvision and rich are optional). The command
is `stylestream train --content DIR --style DIR --out DIR` (streamer/app/train_cmd.py). The names below are
imported on first use, so that the command line can read TrainOptions' defaults without loading torch.
"""

from importlib import import_module

_WHERE = {"TrainOptions": "engines.train.options", "train": "engines.train.loop",
          "export_weights": "engines.train.checkpoint", "load_checkpoint": "engines.train.checkpoint",
          "save_checkpoint": "engines.train.checkpoint"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'engines.train' has no attribute {name!r}")
