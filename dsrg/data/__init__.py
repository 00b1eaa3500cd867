"""Datasets: a reader for any folder in the PASCAL VOC 2012 layout (``voc``) and the embedded
synthetic demo dataset written in that same layout (``synthetic``)."""
