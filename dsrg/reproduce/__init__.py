"""What the book's chapters call: experiments by their settings (``experiments``), the paper's reported numbers
(``paper``), the figures and tables that set ours beside them (``figures``, ``tables``), what made each file
they save (``sources``), and the numbers their text quotes (``glued``)."""
