"""The test-time CRF's two backends on a trained model's own probabilities: for each image, how many pixels
get the same label from the lattice (torch) as from pydensecrf, and how far apart their marginals are."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import torch

from ..method.crf import CRFParams, crf_test_energy, pydensecrf_one
from ..method.crf_lattice import lattice_crf
from ..method.inference import multiscale_probs
from ..run import folders
from ..run.checkpoints import load_model
from ..run.networks import build_seg_net
from ..steps.evaluate import input_sizes
from .experiments import Experiment
from ..run import step_files


def agreement(exp: Experiment, images: Iterable[tuple[str, np.ndarray]], source: str) -> pd.DataFrame:
    """One row per ``(name, uint8 (H, W, 3) image)``: the experiment's evaluated model at its
    ``eval.scales``, its test-time CRF (``eval.crf_scale``) by pydensecrf and by the lattice on the CPU;
    columns ``source``, ``image``, ``pixels``, ``labels equal %``, ``mean |dQ|``, ``max |dQ|``."""
    cfg = exp.cfg
    device = torch.device("cpu")
    source_step = folders.eval_source(cfg)
    num_classes = exp.dataset(cfg.eval.split).num_classes
    model = load_model(exp.folder(source_step) / step_files.MODEL, build_seg_net(cfg, num_classes, device, "none"),
                       device).eval()
    params = CRFParams(scale=cfg.eval.crf_scale)
    rows = []
    for name, image in images:
        probs = multiscale_probs(model, image, input_sizes(cfg.eval.scales, *image.shape[:2]), device,
                                 cfg.data.normalize, amp=False)
        energy = crf_test_energy(probs)
        reference = pydensecrf_one(energy.numpy(), image, params)
        with torch.no_grad():
            ours = lattice_crf([energy], [torch.from_numpy(np.array(image))], params)[0].numpy()
        diff = np.abs(ours - reference)
        rows.append({"source": source, "image": name, "pixels": image.shape[0] * image.shape[1],
                     "labels equal %": 100 * float((ours.argmax(0) == reference.argmax(0)).mean()),
                     "mean |dQ|": float(diff.mean()), "max |dQ|": float(diff.max())})
    return pd.DataFrame(rows)
