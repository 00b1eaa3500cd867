"""What the book's chapters call: experiments by their settings (``experiments``), the paper's reported numbers
(``paper``), the figures and tables that set ours beside them (``figures``, ``tables``), what made each file
they save (``sources``), and the numbers their text quotes (``glued``).

Imported in IPython (a page run by papermill, in JupyterLab or by the book), it has the kernel show an
:class:`~dsrg.errors.InputError` as its message alone, as the command line does, not as a traceback into
the package."""

import sys

from ..errors import InputError


def _message_only(shell, etype, value, tb, tb_offset=None) -> list[str]:
    lines = [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, lines)     # as IPython shows any error: the kernel's error reply
    return lines


def _show_input_errors_as_messages() -> None:
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is not None:
        shell.set_custom_exc((InputError,), _message_only)


_show_input_errors_as_messages()
