"""What the book's chapters call: experiments by their settings (``experiments``), the paper's reported numbers
(``paper``), and the figures and tables that set ours beside them (``figures``, ``tables``)."""
