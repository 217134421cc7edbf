"""Tools that look at a Caffe net without training it.

``python -m npcaffe.tools.summary NET.prototxt`` prints a table of the net's layers with output
shapes, parameter counts, FLOPs and receptive fields; ``python -m npcaffe.tools.draw NET.prototxt
OUT.svg`` draws it. Both build the net with the engine, so the shapes they show are the ones
``npcaffe.Net`` computes (and Caffe computes: the golden tiny FCNs check this).

Modules, one concern each:

==============  ============================================================================
``netgraph``    read + upgrade + phase-filter a prototxt, swap data layers for Input layers,
                build it for the blob shapes; the layer/blob graph both tools share
``geometry``    receptive field, stride and offset of every blob (composes coord_map's maps)
``summary``     the table (parameters, FLOPs, geometry) and its command line
``layout``      a layered layout of a directed acyclic graph (nodes with sizes -> positions)
``render``      a scene of boxes, ellipses, curves and text -> SVG text or PNG (Pillow)
``draw``        the picture of a net (labels, colours, in-place layers) and its command line
``cli``         shape options of the two command lines (the rest is npcaffe.cli.runner)
==============  ============================================================================

Caffe's own tools are here too, as verbs of the ``npcaffe`` command (:mod:`npcaffe.cli.main`),
each module with ``main(argv=None)``: ``convert_imageset`` (a list of images to an LMDB/LevelDB
of Datums), ``compute_image_mean`` (the mean binaryproto of a database), ``extract_features``
(blobs over N batches into databases of Datums) and ``upgrade_proto`` (upgrade_net_proto_text,
upgrade_net_proto_binary, upgrade_solver_proto_text).

``npcaffe.draw`` (pycaffe's ``caffe.draw``) is built on ``draw``, ``layout`` and ``render``.
"""
