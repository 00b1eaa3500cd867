"""Bad input and the checks that find it: one :class:`InputError` whose message names the thing and what
was expected, and the pieces those messages are made of."""

from __future__ import annotations

import _thread
import contextlib
import numbers
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch


class InputError(ValueError):
    """Bad user input (a missing file, a wrong shape, a bad value). The message names the thing."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it (a page under papermill, JupyterLab, the book): the message alone, as the
        command line does; ``%debug`` and ``%pdb`` still reach the traceback (and
        ``traceback.print_exception(sys.last_value)`` prints it)."""
        return [f"{type(self).__name__}: {self}"]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" for none): the part worth quoting in an InputError."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def name_some(names, limit: int = 3) -> str:
    """The first ``limit`` of ``names`` and how many more, for an error message: ``a, b, c, ... (4 more)``."""
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def plural(n: int, word: str) -> str:
    """``1 problem``, ``2 problems``, ``2 classes``: a count and its noun."""
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith(('s', 'x', 'ch', 'sh')) else 's'}"


def not_utf8(path: Path, exc: UnicodeDecodeError, expected: str, prefix: str = "") -> InputError:
    """The InputError for a text file that is not UTF-8: ``path``, the line and the byte, and ``expected``."""
    line = path.read_bytes()[:exc.start].count(b"\n") + 1
    return InputError(f"{prefix}{path}, line {line}: byte {exc.object[exc.start]:#04x} is not UTF-8 text ({expected})")


def expect_shape(name: str, t: torch.Tensor, shape: Sequence[int | None], dtype: torch.dtype | None = None) -> None:
    """Raise InputError unless the tensor ``t`` has ``len(shape)`` dims matching ``shape`` (None = any size)
    and, if given, the torch ``dtype``."""
    import torch  # here: the command line and the profiles import this module, and they start without torch

    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if t.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
        raise InputError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise InputError(f"{name}: expected dtype {dtype}, got {t.dtype}")


def expect_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """Raise InputError unless ``value`` is one of ``choices`` (a setting's name, e.g. ``"backend"``)."""
    if value not in choices:
        shown = ", ".join(str(c) or '""' for c in choices)     # "" (the empty setting) visible
        raise InputError(f"{name}: expected one of {shown}, got {value!r}")


def expect_probability(name: str, value: float, allow_inf: bool = False) -> None:
    """A threshold in [0, 1], or +inf where ``allow_inf`` (``inf`` switches that side off)."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = number and (0.0 <= value <= 1.0 or (allow_inf and value == float("inf")))
    if not ok:
        extra = " or inf" if allow_inf else ""
        raise InputError(f"{name}: expected a value in [0, 1]{extra}, got {value!r}")


def expect_positive_int(name: str, value: object) -> None:
    """Raise InputError unless ``value`` is an int >= 1 (a bool is not accepted)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}: expected a positive integer, got {value!r}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption by :func:`sigterm_interrupts` (the ``dsrg`` command line,
    ``experiments.run``): every step that says where an interrupted run stands says it for SIGTERM too; the
    command then exits with status 143, a Python process ends by SIGTERM."""


def interruption_under(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that ``exc`` was raised over, if any: an interruption inside a library's own
    clean-up can come out as another error (OmegaConf's flag_override raises an AttributeError over it)."""
    return next((e for e in causes(exc) if isinstance(e, KeyboardInterrupt)), None)


def causes(exc: BaseException | None):
    """``exc``, then the error it was raised from or over, and so on (each once)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__


#: Seconds after a Ctrl-C in which another SIGINT, or a SIGTERM, is the same interruption passed on again (by
#: ``timeout``, a process group, torchrun stopping the others), not a new one.
PASSED_ON_S = 1.0


@contextlib.contextmanager
def sigterm_interrupts():
    """In the block, SIGTERM (a cluster's pre-emption, ``kill``, torchrun stopping its processes) raises
    :class:`Terminated` as Ctrl-C raises KeyboardInterrupt, once: a second one is ignored while the block winds
    up, and while an enclosing block of this kind does too. A SIGINT or SIGTERM within :data:`PASSED_ON_S` of a
    Ctrl-C is ignored, so that the step winding up still says where it stopped. The handlers before are restored
    after it; where signals cannot be set (not the main thread) the block runs as it is. A SIGTERM that lands in a
    clean-up callback (a weakref's, a ``__del__``), where Python reports a raised error and drops it, is raised
    again in the code that follows (once a blocking call there returns), or as the block ends."""
    fired, owed, closed, ctrl_c_at = [], [], [], []

    def passed_on() -> bool:
        return bool(ctrl_c_at) and time.monotonic() - ctrl_c_at[-1] < PASSED_ON_S

    def ctrl_c(signum, frame):
        if passed_on():
            return
        ctrl_c_at.append(time.monotonic())
        raise KeyboardInterrupt

    def interrupt(signum, frame):
        if passed_on():
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fired.append(signum)
        owed.clear()
        raise Terminated()

    def dropped(unraisable):
        try:
            if not isinstance(unraisable.exc_value, Terminated):
                return hook(unraisable)
        except Terminated:                   # one landed in the hook itself
            pass
        owed.append(True)
        signal.signal(signal.SIGTERM, interrupt)
        # a moment later, from another thread: raised from here, it would be dropped again
        again = threading.Timer(0.05, send_again)
        again.daemon = True
        again.start()

    def send_again():
        if owed and not closed:              # not after the block: it raises what is owed as it ends
            _thread.interrupt_main(signal.SIGTERM)

    interrupt.dsrg_interrupts = True
    try:
        before = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        before = interrupt          # not the main thread: nothing was set
    if before is interrupt:
        yield
        return
    own_ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler     # not ignored, nor another's
    if own_ctrl_c:
        signal.signal(signal.SIGINT, ctrl_c)
    hook, sys.unraisablehook = sys.unraisablehook, dropped

    def restore():
        outer = getattr(before, "dsrg_interrupts", False)       # an enclosing block's: it winds up next
        signal.signal(signal.SIGTERM, signal.SIG_IGN if (fired or owed) and outer else
                      signal.SIG_DFL if before is None else before)

    try:
        yield
    finally:
        sys.unraisablehook = hook
        closed.append(True)
        if own_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            restore()            # runs a SIGTERM sent again but not yet raised: it is raised here
        except Terminated:
            restore()
            raise
        if owed:                 # dropped as the block ended
            raise Terminated()


@contextlib.contextmanager
def same_in_every_process():
    """Marks the InputErrors raised inside as found alike by every torchrun process (the settings, the inputs'
    files, checked before a step runs): the command line prints them once, from process 0."""
    try:
        yield
    except InputError as exc:
        exc.every_process = True
        raise

