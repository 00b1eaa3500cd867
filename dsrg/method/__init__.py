"""The paper's method, tensors in and tensors out, never a profile: the seed cues of Section 3.1 (``seeds``,
``saliency``), region ``growing`` (Section 3.3, Eq. 3; its connected regions: ``reach``), the ``losses`` (Eq. 1
and 2), the dense ``crf`` (``crf_params``, its ``mean_field``, its torch backends ``crf_exact`` and
``crf_lattice``, the latter on the permutohedral ``lattice``), the images' ``transforms`` (crops, resizing, the
networks' input normalisation), multi-scale ``inference`` and the evaluation ``metrics`` (Section 4).

The paper's thresholds are written here, once: the method's functions take them as defaults, and the
profiles' defaults are the same names (:mod:`dsrg.profile`).
"""

#: The foreground seeds of a class are where its CAM exceeds this fraction of its maximum (Section 3.1).
FG_FRACTION = 0.2

#: The background seeds are where the normalised saliency is below this (Sections 3.1 and 4.1).
BACKGROUND_THRESHOLD = 0.06

#: The threshold theta_f of region growing for the foreground classes (Section 4.1).
THETA_FG = 0.85

#: The threshold theta_b of region growing for the background (Section 4.1).
THETA_BG = 0.99

#: The label value of pixels that no loss and no metric counts (VOC's object borders and "difficult" pixels).
IGNORE = 255

#: The training-time CRF's scale s on the output grid (the authors' code).
TRAIN_CRF_SCALE = 12.0

# The choices of the method's options, here so that the profile's check reads them without loading torch.
FG_RULES = ("fraction_of_max", "top_fraction")                          # seeds.cam_foreground_cues
SALIENCY_METHODS = ("rbd", "spectral_residual", "fine_grained")         # saliency.compute_saliency
SEED_LOSSES = ("balanced", "sec")                                       # losses
CRF_UNARIES = ("prob", "logprob")                                       # crf
CRF_BACKENDS = ("auto", "pydensecrf", "exact", "exact_bf16", "lattice")
TEST_CRF_BACKENDS = ("auto", "pydensecrf", "lattice")   # full-resolution images: no dense kernels
GROW_METHODS = ("auto", "scipy", "numba", "torch", "triton")            # growing
BACKBONES = ("vgg16", "resnet101")                                      # dsrg.models.deeplab
NORMALIZE = ("torchvision", "caffe")                                    # dsrg.method.transforms: input mean/std
