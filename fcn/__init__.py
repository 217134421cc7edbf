"""The FCN toolkit: training, segmentation, scoring and data tools for Fully Convolutional
Networks (Long, Shelhamer, Darrell, CVPR 2015) on Caffe's files, over the ``npcaffe`` engine or
BVLC pycaffe.

One module per concern; the ``fcn`` command (``fcn.cli``) runs each tool as a verb:

==============  ======================================================================
``backend``     the one import point for Caffe (npcaffe or BVLC pycaffe)
``train``       ``fcn solve``: solver + initial weights + surgery + periodic scores
``segment``     ``fcn infer``: images -> palette label PNGs and overlays
``surgery``     ``fcn surgery``: classifier -> FCN weight transplant, bilinear kernels
``metrics``     confusion matrix scores (pixel accuracy, mean IU, ...)
``score``       ``fcn score``: folders of label PNGs scored against ground truth
``labels``      ``fcn labels``: read index labels, convert RGB labels, check a dataset
``vis``         palettes, coloured labels, overlays
``files``       atomic writes of files and images
``demo``        ``fcn demo``: the no-download demo
``downloads``   ``fcn get-data``: VOC, SBD and VGG16 with checksums
``cli``         the ``fcn`` command
==============  ======================================================================

The data layers (``layers``) and net generators (``nets``) are packages of their own, as the
prototxts name them (``python_param { module: "layers.voc" }``).
"""
__version__ = '1.0.0'
