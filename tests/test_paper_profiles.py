"""The paper-scale profiles start training on fixtures in the real on-disk formats (iterations=2).

Only the sizes are shrunk (width, input size, batch, iterations) so that each profile runs its whole
pipeline in seconds; everything else (datasets, splits, steps, losses, schedules) is the profile's.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_sbd import real, tree  # noqa: F401  (fixtures: a tiny VOCdevkit + SBD tree)

from dsrg.data.coco import convert_coco
from dsrg.data.sbd import make_train_aug
from dsrg.data.synthetic import SynthConfig
from dsrg.data.synthetic_coco import write_synthetic_coco
from dsrg.models import ResNet101
from dsrg.profile import load_profile
from dsrg.steps import pipeline

SHRINK = ["cls.width=0.0625", "seg.width=0.0625", "cls.input_size=64", "seg.input_size=64", "cls.batch_size=2",
          "seg.batch_size=2", "retrain.batch_size=2", "cls.iterations=2", "seg.iterations=2",
          "retrain.iterations=2", "retrain.crop_size=48", "pseudo.sizes=[48,64]", "progress=false",
          "data.loader_workers=0", "seeds.saliency=spectral_residual", "random_init=true"]


def _run(profile: str, root, out, *extra: str) -> dict:
    cfg = load_profile(profile, [f"data.root={root}", f"out={out}", *SHRINK, *extra])
    folders = pipeline.run(cfg)
    return json.loads((folders["eval"] / "metrics.json").read_text())


@pytest.mark.parametrize("profile", ["voc-vgg16", "voc-resnet101"])
def test_voc_profiles_run_on_a_voc_plus_sbd_tree(profile, tree, tmp_path):
    voc, sbd = tree
    make_train_aug(voc, sbd, progress=False)
    weights = []
    if profile == "voc-resnet101":    # frozen BatchNorm needs pretrained weights: a stand-in file of that width
        torch.save(ResNet101(width=0.0625).state_dict(), tmp_path / "resnet101.pth")
        weights = [f"seg.backbone_weights={tmp_path / 'resnet101.pth'}"]
    metrics = _run(profile, voc, tmp_path / "run", *weights)
    assert metrics["split"] == "val" and metrics["images"] == 1 and 0.0 <= metrics["miou"] <= 1.0


def test_the_coco_profile_runs_on_the_embedded_dataset_in_coco_format(tmp_path):
    coco = write_synthetic_coco(tmp_path / "coco", SynthConfig(n_train=8, n_val=2, size=64))
    for split in ("train2014", "val2014"):
        convert_coco(coco, split, tmp_path / "COCO2014", progress=False)
    metrics = _run("coco-vgg16", tmp_path / "COCO2014", tmp_path / "run")
    assert metrics["split"] == "val2014" and metrics["images"] == 2
