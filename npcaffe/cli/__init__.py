"""Command lines: ``runner`` is what every command of the engine and the toolkit shares
(``error: ...`` lines, exit statuses, ``--debug``/``--verbose``, progress on a terminal);
``main`` is the ``npcaffe`` command (Caffe's verbs and tools), built from ``flags`` (gflags
parsing), ``glog`` (glog's log layout), ``brew`` (one Caffe-style command run) and ``caffe``
(train, test, time, device_query)."""
