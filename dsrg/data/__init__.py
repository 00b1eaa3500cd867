"""Readers and writers of data: any folder in the PASCAL VOC 2012 layout (``voc``, ``dataset``), SBD's
train_aug (``sbd``), COCO (``coco``), the embedded dataset (``synthetic``, ``synthetic_coco``), saliency maps
(``saliency``) and seed cue files (``cues``)."""
