"""Decoder training (Huang & Belongie 2017): data, losses, loop, checkpoints, export.

Imports only torch, numpy, safetensors and OpenCV or PIL (torchvision and rich are optional) so it runs on
a bare GPU machine: `python -m engines.train --content DIR --style DIR --out DIR`.
"""

from engines.train.checkpoint import export_weights, load_checkpoint, save_checkpoint
from engines.train.loop import TrainOptions, train

__all__ = ["TrainOptions", "train", "export_weights", "load_checkpoint", "save_checkpoint"]
