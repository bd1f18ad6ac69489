"""TrainOptions: everything a training run is told, and the learning rate they give at each step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engines.errors import ConfigError

BASE_BATCH = 8  # the batch the paper's lr belongs to
# "eager" runs the step through TorchDynamo without code generation (tests the plumbing on a CPU).
COMPILE_MODES = ("", "eager", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainOptions:
    content_dir: str
    style_dir: str
    out_dir: str = "runs/decoder"
    steps: int = 160_000
    batch_size: int = 8
    crop: int = 256
    load_size: int = 384            # shorter side the images are kept at; crops are cut from these
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    checkpoint_every: int = 2000
    sample_every: int = 2000
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool = True                # bf16 autocast on CUDA
    resume: bool = False
    time_limit: float | None = None  # seconds; then checkpoint and stop (chunked training)
    exclude_list: str | None = None
    encoder: str | None = None      # a vgg_normalised file instead of the built-in normalised encoder
    init_decoder: str | None = None  # start from these weights (fresh Adam), counting on from their steps
    provisional: bool = False       # marks the exported manifest (e.g. a short CPU run)
    progress: bool = True
    workers: int = 4
    extra_manifest: dict = field(default_factory=dict)
    model: str = "full"             # "full": the AdaIN decoder; "lite": the lite network (engines.lite)
    distill_weight: float = 10.0    # lite: weight of the L1 pull towards the full model's output
    low_alpha_pull: float = 3.0     # lite finetune: the pull's factor on pairs below alpha 1 (no VGG loss there)
    low_alpha_features: bool = False  # lite finetune: judge pairs below alpha 1 by the teacher's VGG features
    teacher: str | None = None      # lite: the full decoder to distil from (None: the shipped one)
    sample_dir: str | None = None   # images for the sample grids (content/ and style/); else dev/ beside the data
    threads: int | None = None      # CPU threads for torch (None: its default). 1 is fastest on a busy
                                    # machine: two threads spin at every barrier when a core is taken
    temporal_weight: float = 0.0    # compound temporal regulariser (engines.train.regularise); 0: off
    compile: str = ""               # torch.compile the loss step with this mode ("": off; see COMPILE_MODES)
    lr_scaling: str = "none"        # lr for batches above BASE_BATCH: none | linear | sqrt (x batch/8 or its root)
    phase: str = "vgg"              # "vgg": the VGG content and style losses; "distil" (lite): from the cache
    cache_dir: str | None = None    # distil: the teacher cache on local disk (None: OUT/cache); never committed
    cache_shards: int = 32          # distil: shards of cached pairs to build (engines.lite.cache.CacheRecipe)
    cache_recipe: dict = field(default_factory=dict)  # distil: CacheRecipe fields that differ (tests: tiny sizes)


def base_lr(opts: TrainOptions) -> float:
    """opts.lr, scaled for batches other than BASE_BATCH as `lr_scaling` says."""
    k = opts.batch_size / BASE_BATCH
    factors = {"none": 1.0, "linear": k, "sqrt": math.sqrt(k)}
    if opts.lr_scaling not in factors:
        raise ConfigError(f"Unknown lr scaling {opts.lr_scaling!r}: use none, linear or sqrt")
    return opts.lr * factors[opts.lr_scaling]


def learning_rate(opts: TrainOptions, step: int) -> float:
    return base_lr(opts) / (1.0 + opts.lr_decay * step)
