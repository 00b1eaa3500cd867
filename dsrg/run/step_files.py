"""The files of a step folder (``runs/<profile>/<step>-<hash>/``), named once: the run machinery, the steps, the
command line and the book's pages write and read them by these names."""

CONFIG = "config.json"              # the settings that name the folder, written when the step starts
DONE = "done.json"                  # written last (the step is complete): wall time, machine, code, its figures
LOG = "log.jsonl"                   # a training step: one line per iteration (lr, losses, seconds)
CHECKPOINT = "ckpt.pt"              # a training step while it trains: weights, optimiser, RNG states
MODEL = "model.pt"                  # a training step's final weights
CUES = "cues.npz"                   # seeds: every training image's cues on the output grid
ELAPSED = "elapsed.json"            # seeds, pseudo-labels, evaluate while they run: their sessions' wall seconds
CUE_PARTS = "cues-parts"            # seeds while it runs: the cues made so far, a file per few hundred images
SUPERVISION = "supervision.csv"     # train-seg: the grown cues' quality per epoch (Fig. 4)
FIG1 = "fig1.npz"                   # train-seg: a few images' supervision per epoch (Fig. 1)
METRICS = "metrics.json"            # evaluate: mIoU, IoU per class, pixel accuracy
PER_IMAGE = "per_image.csv"         # evaluate: each image's mIoU
