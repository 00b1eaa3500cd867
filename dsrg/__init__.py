"""dsrg: Deep Seeded Region Growing (Huang et al., CVPR 2018) in PyTorch."""

__version__ = "0.1.0"
