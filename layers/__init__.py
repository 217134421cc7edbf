"""The toolkit's Python data layers, for ``python_param { module: "layers.<name>" ... }``.

- ``layers.voc``: ``VOCSegDataLayer`` (PASCAL VOC) and ``SBDDSegDataLayer`` (SBD), the
  reference FCN layers with checked parameters;
- ``layers.folder``: ``FolderSegDataLayer``, one's own folder of image / label PNG pairs;
- ``layers.siftflow``: ``SIFTFlowSegDataLayer`` (tops data, sem, geo);
- ``layers.nyud``: ``NYUDSegDataLayer`` (tops chosen from color, depth, hha, label);
- ``layers.pascalcontext``: ``PASCALContextSegDataLayer`` (VOC2010 images, the 59-class labels);
- ``layers.images``: the loading, checks and base layer they share;
- ``layers.params``: safe ``param_str`` parsing (Python literal or JSON, keys checked).

Every layer reaches the engine through ``from backend import caffe`` only, so the same modules
run under npcaffe and BVLC pycaffe.
"""
