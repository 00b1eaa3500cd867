"""What the book's chapters call: experiments by their settings (``experiments``) and a page's parameters
(``parameters``), the paper's reported numbers (``paper``), the figures and tables that set ours beside them
(``figures``, ``tables``; ``legends`` labels a plot of several runs, ``curves`` draws training logs), what
made each file they save (``sources``), the numbers their text quotes (``glued``), the spread over seeds
(``spread``), and measurements of their own (``background_seeds``, ``crf_agreement``)."""
