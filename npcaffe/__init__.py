"""npcaffe: Caffe's nets, file formats and numerics on NumPy, with the pycaffe API.

Use it where a script says ``import caffe``::

    import npcaffe as caffe
    net = caffe.Net('deploy.prototxt', 'weights.caffemodel', caffe.TEST)
"""
