"""Layers that bring data into a net, one module each: ``input`` (Input, DummyData, Parameter),
``memory`` (MemoryData, fed from arrays by ``Net.set_input_arrays``), ``database`` (Data: LMDB /
LevelDB Datums), ``image_data`` (ImageData: image files from a list), ``hdf5`` (HDF5Data,
HDF5Output), ``window`` (WindowData, refused). Their helpers: ``transformer`` (Caffe's
DataTransformer), ``prefetch`` (background batches, the prefetching layer base), ``db`` (the
databases), ``image`` (OpenCV's decoding and resizing, Datums)."""
