"""Saliency for the background seeds (Section 3.1): built-in unsupervised methods, one image at a time.

The paper uses DRFI (Jiang et al., CVPR 2013), whose trained regressor cannot be had offline; DRFI maps read
from a folder (:class:`dsrg.data.saliency.SaliencyFolder`) are used as they are. Built in: ``rbd``, Robust
Background Detection (Zhu, Liang, Wei, Sun, CVPR 2014) from its paper, averaged over three superpixel scales,
and OpenCV's ``spectral_residual`` (Hou & Zhang, CVPR 2007) and ``fine_grained`` (Montabone & Soto, 2010).
Why RBD, and how it departs from its paper: the book's fidelity chapter. Every map is ``float32 (H, W)`` in
``[0, 1]`` (:func:`normalize`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.sparse import coo_matrix, csc_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.sparse.linalg import spsolve

from ..errors import InputError, expect_choice, expect_shape
from . import SALIENCY_METHODS as METHODS


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(H, W)`` map of a ``(B, H, W)`` batch to [0, 1], in its dtype.

    A constant map carries no information: it becomes all ones, which gives no background seed (all zeros
    would seed the whole image as background)."""
    expect_shape("saliency maps", maps, (None, None, None))
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    stretched = (flat - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, stretched, torch.ones_like(flat)).view_as(maps)


def normalize(sal: np.ndarray) -> np.ndarray:
    """One saliency map, any real ``(H, W)`` array, as ``float32 (H, W)`` in ``[0, 1]`` (:func:`normalize_maps`,
    computed in float64); a map that is not 2-D, not real or not finite is an InputError."""
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
    return normalize_maps(torch.from_numpy(sal)[None])[0].numpy().astype(np.float32)


#: An image whose every channel spans at most this many grey levels is flat and has no saliency.
FLAT_TOLERANCE = 2

#: Superpixel sizes (target pixels per superpixel) averaged by ``method="rbd"``. The paper uses one
#: segmentation of about 600 superpixels per ~300x400 image, i.e. ~200 pixels each.
RBD_SCALES = (150, 250, 400)

#: At most this many superpixels in the finest ``rbd`` segmentation (the paper's ~600 per image).
RBD_MAX_SEGMENTS = 600


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


def _unique_pairs(i: np.ndarray, j: np.ndarray, k: int) -> np.ndarray:
    """The distinct pairs ``(i, j)`` of ids below ``k``, sorted: ``int64 (E, 2)`` (one number a pair, so that
    ``np.unique`` sorts numbers, not rows)."""
    codes = np.unique(i.astype(np.int64) * k + j)
    return np.stack([codes // k, codes % k], 1)


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unordered pairs ``(i, j)``, ``i < j``, of 4-adjacent regions, sorted: ``int64 (E, 2)``."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    return _unique_pairs(np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep]), int(labels.max()) + 1)


def _pairwise_distances(points: np.ndarray, squared: bool = False) -> np.ndarray:
    """Euclidean distances between the rows of ``points (K, D)``: ``(K, K)``, summed over D in order (as
    ``((p[:, None] - p[None]) ** 2).sum(-1)``, without its ``(K, K, D)`` array)."""
    d2 = np.zeros((len(points), len(points)))
    for column in points.T:
        diff = column[:, None] - column[None, :]
        d2 += diff * diff
    return d2 if squared else np.sqrt(d2)


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


def _geodesic_distances(d_app: np.ndarray, pairs: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Shortest-path colour distances ``(K, K)`` (inf when disconnected) on the graph of RBD: an edge between
    adjacent superpixels (``pairs (E, 2)``, ``i < j``) and between any two border ones (``border``, sorted:
    as Zhu et al. do, it raises the boundary connectivity of background split by an object touching the
    border), each weighted by ``d_app (K, K)`` once, also where two border superpixels are adjacent."""
    k = len(d_app)
    bi, bj = np.triu_indices(len(border), 1)
    gi, gj = _unique_pairs(np.concatenate([pairs[:, 0], border[bi]]), np.concatenate([pairs[:, 1], border[bj]]), k).T
    # a tiny floor keeps zero-distance edges in the sparse graph (a stored 0 would mean "no edge")
    gw = np.maximum(d_app[gi, gj], 1e-6)
    graph = coo_matrix((gw, (gi, gj)), shape=(k, k)).tocsr()
    return shortest_path(graph, method="D", directed=False)


def _rbd_superpixel_saliency(lab: np.ndarray, pos: np.ndarray, pairs: np.ndarray, border: np.ndarray,
                             sigma_clr: float, sigma_bnd: float, sigma_spa: float,
                             mu: float) -> tuple[np.ndarray, np.ndarray]:
    """RBD on a superpixel graph: ``(saliency (K,), background probability w_bg (K,))``.

    ``lab``: ``(K, 3)`` mean CIE-Lab colours; ``pos``: ``(K, 2)`` mean positions in ``[0, 1]``;
    ``pairs``: ``(E, 2)`` adjacent superpixels; ``border``: ids touching the image border.
    Zhu et al. 2014: boundary connectivity, background-weighted contrast, saliency optimisation.
    """
    k = len(lab)
    d_app = _pairwise_distances(lab)  # (K, K)
    d_geo = _geodesic_distances(d_app, pairs, border)

    s = np.exp(-(d_geo ** 2) / (2.0 * sigma_clr ** 2))  # exp(-inf) = 0
    area = s.sum(1)  # >= 1: S(p, p) = 1
    len_bnd = s[:, border].sum(1)
    bnd_con = len_bnd / np.sqrt(area)
    w_bg = 1.0 - np.exp(-(bnd_con ** 2) / (2.0 * sigma_bnd ** 2))

    d_spa2 = _pairwise_distances(pos, squared=True)
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
    """Saliency of one ``uint8 (H, W, 3)`` RGB image with a built-in method (``METHODS``: ``rbd``,
    ``spectral_residual``, ``fine_grained``).

    Returns ``float32 (H, W)`` in ``[0, 1]`` (min-max normalised); deterministic. ``"rbd"`` is
    :func:`rbd_saliency`; ``"spectral_residual"`` and ``"fine_grained"`` use ``cv2.saliency``.
    A flat image (every channel within :data:`FLAT_TOLERANCE` grey levels) gives all ones, i.e. no
    background cue, as :func:`normalize` does for a constant map.
    """
    expect_choice("saliency method", method, METHODS)
    image = _check_image(image)
    if int(np.ptp(image.reshape(-1, 3), axis=0).max()) <= FLAT_TOLERANCE:
        return np.ones(image.shape[:2], np.float32)  # flat image: nothing salient, no background cue
    if method == "rbd":
        return rbd_saliency(image)
    return _opencv_saliency(image, method)
