"""Saliency maps for the background seed cues.

DSRG (Huang et al., CVPR 2018, Sec. 3.1 and 4.1) takes its background seeds from a saliency map:
DRFI saliency (H. Jiang et al., "Salient object detection: a discriminative regional feature
integration approach", CVPR 2013) normalised to ``[0, 1]``; every pixel whose normalised saliency
is below ``0.06`` (:data:`BACKGROUND_THRESHOLD`) is a background cue.

DRFI's trained regressor cannot be obtained offline, so this module offers two sources of maps:

* **Precomputed maps** (DRFI or any other published maps), one grayscale PNG per image id in a
  folder: :class:`SaliencyFolder` / :func:`read_saliency_png`.
* **A built-in unsupervised method**, :func:`compute_saliency`. The default, ``method="rbd"``, is
  *Robust Background Detection* with saliency optimisation:

      W. Zhu, S. Liang, Y. Wei, J. Sun, "Saliency Optimization from Robust Background Detection",
      CVPR 2014.

  It is implemented here from the paper's description:

  1. SLIC superpixels; mean CIE-Lab colour and mean (normalised) position of each.
  2. An undirected graph joins adjacent superpixels, weighted by the Lab distance ``d_app`` of their
     means; following the paper's implementation note, every pair of superpixels that touch the
     image border is joined too (background split by an object still counts as border-connected).
  3. Geodesic distance ``d_geo(p, q)`` = shortest-path length (``scipy.sparse.csgraph``).
  4. ``S(p, q) = exp(-d_geo^2 / (2 sigma_clr^2))``; spanning area ``Area(p) = sum_q S(p, q)``; length
     along the border ``Len(p) = sum_{q on border} S(p, q)``; boundary connectivity
     ``BndCon(p) = Len(p) / sqrt(Area(p))``; background probability
     ``w_bg(p) = 1 - exp(-BndCon(p)^2 / (2 sigma_bnd^2))``.
  5. Background-weighted contrast ``wCtr(p) = sum_q d_app(p, q) w_spa(p, q) w_bg(q)`` with
     ``w_spa = exp(-d_spa^2 / (2 sigma_spa^2))`` (positions in ``[0, 1]``).
  6. Saliency optimisation: minimise
     ``sum_i w_bg_i s_i^2 + sum_i w_fg_i (s_i - 1)^2 + sum_{i~j} w_ij (s_i - s_j)^2``
     with ``w_fg = wCtr`` (scaled to ``[0, 1]``) and ``w_ij = exp(-d_app^2 / (2 sigma_clr^2)) + mu``
     over adjacent pairs: one ``K x K`` linear system ``(diag(w_bg + w_fg) + L) s = w_fg``, ``L``
     the graph Laplacian of ``w_ij``.

  Parameters are the paper's (``sigma_clr = 10``, ``sigma_bnd = 1``, ``sigma_spa = 0.25``,
  ``mu = 0.1``, SLIC compactness 10). Deviations: the map is averaged over three superpixel scales
  (:data:`RBD_SCALES`, ~150/250/400 pixels per superpixel, at most :data:`RBD_MAX_SEGMENTS` in the
  finest), which smooths out single-segmentation accidents (one superpixel leaking across an object
  edge); on images where SLIC collapses (strong pixel noise) the compactness is raised, and a
  block grid is the last resort. Cost: ~0.04 s for 128x128, ~0.5 s for 500x375 (one CPU core).

  Why this method: the background cue only needs pixels that are **surely** background, i.e. high
  precision of ``saliency < 0.06`` with reasonable recall. Boundary connectivity says exactly that
  (a region is background when it is well connected to the image border), and the optimisation
  drives such regions to saliency 0 while keeping the object's superpixels (which are in contrast
  with the background and connected to the object) away from 0. Superpixel maps follow image edges,
  so the cue stops at object boundaries. Frequency-domain or fixation-style methods give smooth,
  blurry maps whose low values leak into object interiors.

  Alternatives through OpenCV's ``cv2.saliency`` (``opencv-contrib``):
  ``method="spectral_residual"`` (X. Hou, L. Zhang, "Saliency detection: a spectral residual
  approach", CVPR 2007) and ``method="fine_grained"`` (S. Montabone, A. Soto, "Human detection
  using a mobile platform and novel features derived from a visual saliency mechanism", Image and
  Vision Computing 2010). Both are much weaker background-cue sources (see
  ``benchmarks/saliency_precision.py``).

Every map this module returns is ``float32 (H, W)`` in ``[0, 1]``, normalised per image by
:func:`normalize`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix, csc_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.sparse.linalg import spsolve
from tqdm import tqdm

from dsrg.io import InputError, load_image

__all__ = [
    "BACKGROUND_THRESHOLD",
    "FLAT_TOLERANCE",
    "METHODS",
    "RBD_MAX_SEGMENTS",
    "RBD_SCALES",
    "SaliencyFolder",
    "background_cue_counts",
    "background_cue_quality",
    "background_cues",
    "compute_saliency",
    "normalize",
    "rbd_saliency",
    "read_saliency_png",
    "saliency_maps",
]

#: The paper's threshold: normalised saliency below it is a background cue (Sec. 4.1).
BACKGROUND_THRESHOLD = 0.06

#: Built-in methods accepted by :func:`compute_saliency`.
METHODS = ("rbd", "spectral_residual", "fine_grained")

#: An image whose every channel spans at most this many grey levels is "flat": no saliency.
FLAT_TOLERANCE = 2

#: Superpixel sizes (target pixels per superpixel) averaged by ``method="rbd"``. The paper uses one
#: segmentation of about 600 superpixels per ~300x400 image, i.e. ~200 pixels each.
RBD_SCALES = (150, 250, 400)

#: At most this many superpixels in the finest ``rbd`` segmentation (the paper's ~600 per image).
RBD_MAX_SEGMENTS = 600


# --------------------------------------------------------------------------------------------------
# normalisation, reading precomputed maps


def normalize(sal: np.ndarray) -> np.ndarray:
    """Min-max normalise one saliency map to ``float32 (H, W)`` in ``[0, 1]``.

    ``sal``: any real ``(H, W)`` array. The minimum maps to 0 and the maximum to 1.

    A **constant map returns all ones**: it carries no information, and all zeros would make the
    whole image a background cue (``< 0.06``), i.e. confidently wrong labels on the object. All ones
    gives *no* background cue, which is the safe failure (the image then trains on its foreground
    seeds only). Non-finite values raise :class:`~dsrg.io.InputError`.
    """
    sal = np.asarray(sal)
    if sal.ndim != 2:
        raise InputError(f"saliency map must be 2-D (H, W); got shape {sal.shape}")
    if sal.dtype == bool or not (np.issubdtype(sal.dtype, np.integer) or np.issubdtype(sal.dtype, np.floating)):
        raise InputError(f"saliency map must hold real numbers; got dtype {sal.dtype}")
    sal = sal.astype(np.float64)
    if sal.size and not np.isfinite(sal).all():
        raise InputError("saliency map holds NaN or infinite values; expected finite numbers")
    if sal.size == 0:
        return sal.astype(np.float32)
    lo, hi = float(sal.min()), float(sal.max())
    if hi <= lo:
        return np.ones(sal.shape, np.float32)
    return np.clip((sal - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def background_cues(sal: np.ndarray, threshold: float = BACKGROUND_THRESHOLD) -> np.ndarray:
    """Background cue mask ``bool (H, W)``: normalised saliency strictly below ``threshold``."""
    return np.asarray(sal) < threshold


def _check_size(size: Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"{what}: size must be (H, W); got {size!r}") from None
    if h <= 0 or w <= 0:
        raise InputError(f"{what}: size must be positive (H, W); got {size!r}")
    return h, w


def _resize_bilinear(sal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a float map ``(h, w)`` to ``size = (H, W)``, clipped to ``[0, 1]``."""
    h, w = size
    out = Image.fromarray(sal.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def read_saliency_png(path: str | os.PathLike, size: Sequence[int] | None = None,
                      resize: bool = False) -> np.ndarray:
    """Read a saliency map file as ``float32 (H, W)`` in ``[0, 1]`` (min-max normalised).

    Accepts 8-bit or 16-bit grayscale PNGs (and JPEGs, 32-bit integer or float TIFF-like modes);
    colour files are turned to luminance. ``size = (H, W)`` is the image's size: a map of another
    size raises :class:`~dsrg.io.InputError` naming the file and both sizes, unless ``resize=True``, which
    bilinearly resizes it (after normalisation). A missing or unreadable file raises
    :class:`~dsrg.io.InputError`.
    """
    path = Path(path)
    size = _check_size(size, f"saliency map {path}")
    im = load_image(path, "saliency map", "a grayscale PNG")
    if im.mode in ("L", "I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im)
    else:  # palette, RGB(A), LA, 1, CMYK, ...: luminance
        arr = np.asarray(im.convert("L"))
    if arr.ndim != 2:
        raise InputError(f"saliency map {path} has shape {arr.shape}; expected a single-channel image")
    try:
        sal = normalize(arr)
    except InputError as exc:
        raise InputError(f"saliency map {path}: {exc}") from None
    if size is not None and sal.shape != size:
        if not resize:
            raise InputError(f"saliency map {path} has size (H, W) = {sal.shape} but the image has "
                             f"{size}; pass resize=True to resize it bilinearly")
        sal = _resize_bilinear(sal, size)
    return sal


class SaliencyFolder:
    """Precomputed saliency maps, one file ``<folder>/<image_id><suffix>`` per image.

    ``SaliencyFolder(folder)(image_id, size)`` returns the map as :func:`read_saliency_png` does
    (``float32 (H, W)`` in ``[0, 1]``). A missing folder or file raises :class:`~dsrg.io.InputError` naming
    it; a size mismatch raises unless ``resize=True``.
    """

    def __init__(self, folder: str | os.PathLike, suffix: str = ".png", resize: bool = False) -> None:
        self.folder = Path(folder)
        self.suffix = suffix
        self.resize = resize
        if not self.folder.is_dir():
            raise InputError(f"saliency folder not found: {self.folder} "
                             f"(expected a folder of <image_id>{suffix} maps)")

    def path(self, image_id: str) -> Path:
        """The file that holds ``image_id``'s map."""
        return self.folder / f"{image_id}{self.suffix}"

    def __call__(self, image_id: str, size: Sequence[int] | None = None) -> np.ndarray:
        path = self.path(image_id)
        if not path.is_file():
            raise InputError(f"no saliency map for image {image_id!r}: {path} not found "
                             f"in saliency folder {self.folder}")
        return read_saliency_png(path, size=size, resize=self.resize)

    def __repr__(self) -> str:
        return f"SaliencyFolder({str(self.folder)!r}, suffix={self.suffix!r}, resize={self.resize})"


# --------------------------------------------------------------------------------------------------
# Robust Background Detection (Zhu et al., CVPR 2014)


def _grid_labels(h: int, w: int, n_segments: int) -> np.ndarray:
    """Square-block labels ``int (H, W)``, about ``n_segments`` blocks (SLIC's fallback)."""
    step = max(1, int(round(np.sqrt(h * w / max(n_segments, 1)))))
    cols = -(-w // step)
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy // step) * cols + (xx // step)


def _superpixels(lab_image: np.ndarray, n_segments: int, max_num_iter: int = 10) -> np.ndarray:
    """SLIC superpixels of a CIE-Lab image ``(H, W, 3)``: labels ``int (H, W)``, contiguous ``0..K-1``.

    SLIC (Achanta et al., TPAMI 2012) with compactness 10, as in Zhu et al. On strong pixel noise
    SLIC's connectivity step can merge almost everything into a few segments; then the compactness
    is raised, and as a last resort a regular grid of blocks is used, so a map is always produced.
    """
    from skimage.segmentation import slic

    h, w = lab_image.shape[:2]
    # skimage rescales its input to [0, 1] before clustering; dividing the compactness by the Lab
    # range undoes that, so the colour term is in true Lab units as in the original SLIC
    lab_range = max(float(lab_image.max() - lab_image.min()), 1e-6)
    labels = None
    for compactness in (10.0, 20.0, 40.0):
        labels = slic(lab_image, n_segments=n_segments, compactness=compactness / lab_range, start_label=0,
                      convert2lab=False, enforce_connectivity=True, max_num_iter=max_num_iter)
        if labels.max() + 1 >= max(4, n_segments // 4):
            break
    else:
        labels = _grid_labels(h, w, n_segments)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(h, w)


def _region_means(labels: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``values (H, W, C)`` over each of the ``k`` regions of ``labels``: ``(k, C)``."""
    flat = labels.ravel()
    count = np.bincount(flat, minlength=k).astype(np.float64)
    vals = values.reshape(flat.size, -1)
    sums = np.stack([np.bincount(flat, weights=vals[:, c], minlength=k) for c in range(vals.shape[1])], 1)
    return sums / count[:, None]


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unordered pairs ``(i, j)``, ``i < j``, of 4-adjacent regions: ``int (E, 2)``."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], 1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _border_regions(labels: np.ndarray) -> np.ndarray:
    """Sorted ids of the regions that touch the image border."""
    return np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))


def _solve_smooth(pairs: np.ndarray, w_ij: np.ndarray, diag: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(diag(diag) + L) s = rhs``, ``L`` the Laplacian of edges ``pairs (E, 2)`` weighted ``w_ij``.

    The matrix is sparse, symmetric positive definite when ``diag > 0``. A sparse direct solve
    (SuperLU) is used on purpose: a dense LAPACK solve calls the threaded BLAS, which stalls for
    ~0.1 s when it runs right after SLIC's OpenMP loop (both thread pools spin on 2 cores).
    """
    k = len(rhs)
    deg = np.bincount(pairs[:, 0], weights=w_ij, minlength=k) + np.bincount(pairs[:, 1], weights=w_ij, minlength=k)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(k)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(k)])
    vals = np.concatenate([-w_ij, -w_ij, deg + diag + 1e-9])
    return spsolve(csc_matrix((vals, (rows, cols)), shape=(k, k)), rhs)


def _rbd_superpixel_saliency(lab: np.ndarray, pos: np.ndarray, pairs: np.ndarray, border: np.ndarray,
                             sigma_clr: float, sigma_bnd: float, sigma_spa: float,
                             mu: float) -> tuple[np.ndarray, np.ndarray]:
    """RBD on a superpixel graph: ``(saliency (K,), background probability w_bg (K,))``.

    ``lab``: ``(K, 3)`` mean CIE-Lab colours; ``pos``: ``(K, 2)`` mean positions in ``[0, 1]``;
    ``pairs``: ``(E, 2)`` adjacent superpixels; ``border``: ids touching the image border.
    Zhu et al. 2014: boundary connectivity, background-weighted contrast, saliency optimisation.
    """
    k = len(lab)
    d_app = np.sqrt(((lab[:, None, :] - lab[None, :, :]) ** 2).sum(-1))  # (K, K)

    # graph: adjacent pairs, plus every pair of border superpixels (as Zhu et al. do: it raises the
    # boundary connectivity of background split by an object touching the border)
    bi, bj = np.triu_indices(len(border), 1)
    gi = np.concatenate([pairs[:, 0], border[bi]])
    gj = np.concatenate([pairs[:, 1], border[bj]])
    # a tiny floor keeps zero-distance edges in the sparse graph (a stored 0 would mean "no edge")
    gw = np.maximum(d_app[gi, gj], 1e-6)
    graph = coo_matrix((gw, (gi, gj)), shape=(k, k)).tocsr()
    d_geo = shortest_path(graph, method="D", directed=False)  # (K, K), inf when disconnected

    s = np.exp(-(d_geo ** 2) / (2.0 * sigma_clr ** 2))  # exp(-inf) = 0
    area = s.sum(1)  # >= 1: S(p, p) = 1
    len_bnd = s[:, border].sum(1)
    bnd_con = len_bnd / np.sqrt(area)
    w_bg = 1.0 - np.exp(-(bnd_con ** 2) / (2.0 * sigma_bnd ** 2))

    d_spa2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    w_spa = np.exp(-d_spa2 / (2.0 * sigma_spa ** 2))
    w_ctr = (d_app * w_spa * w_bg[None, :]).sum(1)  # no BLAS call: see _solve_smooth
    ctr_range = w_ctr.max() - w_ctr.min()
    # no visible colour difference anywhere (< 1 Lab unit; a just-noticeable one is ~2.3): no
    # foreground evidence, rather than min-max stretching invisible differences; the map is then 0
    visible = ctr_range > 1e-6 and d_app.max() >= 1.0
    w_fg = (w_ctr - w_ctr.min()) / ctr_range if visible else np.zeros(k)

    # least squares: (diag(w_bg + w_fg) + L) s = w_fg, L = Laplacian of the smoothness weights
    w_ij = np.exp(-(d_app[pairs[:, 0], pairs[:, 1]] ** 2) / (2.0 * sigma_clr ** 2)) + mu
    sal = _solve_smooth(pairs, w_ij, w_bg + w_fg, w_fg)
    return np.clip(sal, 0.0, 1.0), w_bg


def _n_segments(h: int, w: int, pixels_per_segment: float, finest: float, max_segments: int) -> int:
    """SLIC's target count: ``H*W / pixels_per_segment``, capped so the finest scale has at most
    ``max_segments`` (large images get larger superpixels, not a bigger graph)."""
    n = min(h * w / pixels_per_segment, max_segments * finest / pixels_per_segment)
    return max(8, int(round(n)))


def rbd_saliency(image: np.ndarray, scales: Sequence[int] = RBD_SCALES,
                 max_segments: int = RBD_MAX_SEGMENTS, sigma_clr: float = 10.0, sigma_bnd: float = 1.0,
                 sigma_spa: float = 0.25, mu: float = 0.1) -> np.ndarray:
    """Robust Background Detection saliency (Zhu et al., CVPR 2014), normalised ``float32 (H, W)``.

    ``image``: ``uint8 (H, W, 3)`` RGB. ``scales``: target pixels per SLIC superpixel, one
    segmentation each; the per-pixel saliency is averaged over them before normalisation.
    ``max_segments`` caps the superpixel count of the finest scale (the others shrink in
    proportion), which bounds the cost on large images. The other parameters are the paper's (colour
    sigma in Lab units, boundary-connectivity sigma, spatial sigma in image-size units, smoothness
    offset ``mu``).
    """
    from skimage.color import rgb2lab

    image = _check_image(image)
    if len(scales) == 0 or min(scales) <= 0 or max_segments < 1:
        raise InputError(f"rbd_saliency: scales must be positive pixel counts and max_segments >= 1; "
                         f"got scales={tuple(scales)}, max_segments={max_segments}")
    h, w = image.shape[:2]
    lab_img = rgb2lab(image)
    yy, xx = np.mgrid[0:h, 0:w]
    pos_img = np.stack([yy / max(h - 1, 1), xx / max(w - 1, 1)], -1)
    total = np.zeros((h, w), np.float64)
    finest = min(scales)
    for pps in scales:
        labels = _superpixels(lab_img, _n_segments(h, w, pps, finest, max_segments))
        k = int(labels.max()) + 1
        if k < 2:
            continue
        lab = np.round(_region_means(labels, lab_img, k), 6)  # no float noise on flat areas
        pos = _region_means(labels, pos_img, k)
        sal, _ = _rbd_superpixel_saliency(lab, pos, _adjacent_pairs(labels), _border_regions(labels),
                                          sigma_clr, sigma_bnd, sigma_spa, mu)
        total += sal[labels]
    return normalize(total)


# --------------------------------------------------------------------------------------------------
# dispatch


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be uint8 RGB (H, W, 3); got dtype {image.dtype}, shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image must be at least 2x2 pixels; got shape {image.shape}")
    return image


def _opencv_saliency(image: np.ndarray, method: str) -> np.ndarray:
    import cv2

    image = _check_image(image)
    if method == "spectral_residual":
        algo = cv2.saliency.StaticSaliencySpectralResidual_create()
    else:
        algo = cv2.saliency.StaticSaliencyFineGrained_create()
    ok, sal = algo.computeSaliency(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cv2.saliency {method} failed on an image of shape {image.shape}")
    sal = np.asarray(sal, dtype=np.float32)
    if sal.shape != image.shape[:2]:
        sal = cv2.resize(sal, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return normalize(sal)


def compute_saliency(image: np.ndarray, method: str = "rbd") -> np.ndarray:
    """Saliency of one ``uint8 (H, W, 3)`` RGB image with a built-in method (:data:`METHODS`).

    Returns ``float32 (H, W)`` in ``[0, 1]`` (min-max normalised); deterministic. ``"rbd"`` is
    :func:`rbd_saliency`; ``"spectral_residual"`` and ``"fine_grained"`` use ``cv2.saliency``.
    A flat image (every channel within :data:`FLAT_TOLERANCE` grey levels) gives all ones, i.e. no
    background cue, as :func:`normalize` does for a constant map.
    """
    if method not in METHODS:
        raise InputError(f"unknown saliency method {method!r}; expected one of {', '.join(METHODS)}")
    image = _check_image(image)
    if int(np.ptp(image.reshape(-1, 3), axis=0).max()) <= FLAT_TOLERANCE:
        return np.ones(image.shape[:2], np.float32)  # flat image: nothing salient, no background cue
    if method == "rbd":
        return rbd_saliency(image)
    return _opencv_saliency(image, method)


def saliency_maps(images: Iterable[np.ndarray], ids: Iterable[str] | None = None, *,
                  folder: str | os.PathLike | SaliencyFolder | None = None, method: str = "rbd",
                  resize: bool = False) -> Iterator[np.ndarray]:
    """Yield one normalised saliency map ``float32 (H, W)`` per image, lazily.

    With ``folder`` (a path or a :class:`SaliencyFolder`) the maps are read from it by image id
    (``ids`` is then required, in the same order as ``images``; each map must match its image's size
    unless ``resize``, which applies when ``folder`` is a path: a :class:`SaliencyFolder` keeps its
    own setting). Without it they are computed with ``method`` (see :func:`compute_saliency`).
    """
    if folder is None:
        for image in images:
            yield compute_saliency(image, method)
        return
    if ids is None:
        raise InputError("saliency_maps: reading maps from a folder needs the image ids (ids=...)")
    source = folder if isinstance(folder, SaliencyFolder) else SaliencyFolder(folder, resize=resize)
    sentinel = object()
    ids_it, images_it = iter(ids), iter(images)
    while True:
        image, image_id = next(images_it, sentinel), next(ids_it, sentinel)
        if image is sentinel and image_id is sentinel:
            return
        if image is sentinel or image_id is sentinel:
            raise InputError("saliency_maps: images and ids have different lengths")
        yield source(image_id, np.asarray(image).shape[:2])


# --------------------------------------------------------------------------------------------------
# quality of the background cue


def background_cue_quality(dataset, method: str = "rbd", folder: str | os.PathLike | None = None,
                           threshold: float = BACKGROUND_THRESHOLD, limit: int | None = None,
                           progress: bool = True) -> dict:
    """Precision and recall of the background cue ``saliency < threshold`` against ground truth.

    Args:
        dataset: a :class:`dsrg.data.voc.VOCSegmentation` with masks (0 = background, 255 ignored).
        method / folder: the saliency source, as in :func:`saliency_maps`.
        limit: score only the first ``limit`` images.
    Returns:
        dict with ``precision`` (cue pixels that are background, pooled over images), ``recall``
        (background pixels that are cues), ``cue_fraction`` (cue pixels / scored pixels),
        ``images`` and ``seconds_per_image``.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    cue_bg = cue_all = bg_all = scored = 0
    start = time.perf_counter()
    for i in tqdm(range(n), desc=f"saliency ({folder or method})", disable=not progress):
        item = dataset[i]
        if folder is not None:
            sal = SaliencyFolder(folder)(item["id"], item["mask"].shape)
        else:
            sal = compute_saliency(item["image"], method)
        counts = background_cue_counts(sal, item["mask"], threshold)
        cue_bg += counts[0]; cue_all += counts[1]; bg_all += counts[2]; scored += counts[3]
    seconds = time.perf_counter() - start
    return {"precision": cue_bg / cue_all if cue_all else float("nan"),
            "recall": cue_bg / bg_all if bg_all else float("nan"),
            "cue_fraction": cue_all / scored if scored else float("nan"),
            "images": n, "seconds_per_image": seconds / max(n, 1)}


def background_cue_counts(sal: np.ndarray, mask: np.ndarray, threshold: float = BACKGROUND_THRESHOLD,
                          ignore: int = 255) -> tuple[int, int, int, int]:
    """Pixel counts of one image's background cue against its ground truth ``mask`` (0 = background).

    Returns ``(cue pixels on background, cue pixels, background pixels, scored pixels)``; pixels whose
    ground truth is ``ignore`` are not scored.
    """
    valid = mask != ignore
    cue = background_cues(sal, threshold) & valid
    is_bg = (mask == 0) & valid
    return int((cue & is_bg).sum()), int(cue.sum()), int(is_bg.sum()), int(valid.sum())
