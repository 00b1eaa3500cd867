"""The machinery that runs a step: the table of steps and their run folders (``folders``), the training loop
(``train``) and its checkpoints, devices and torchrun processes (``dist``), and the pre-flight check of a
step's inputs (``preflight``) with the image lists a step folder was made from (``split_lists``)."""
