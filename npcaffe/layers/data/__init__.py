"""Layers that bring data into a net, one module each: ``input`` (Input, DummyData, Parameter),
``memory`` (MemoryData, fed from arrays by ``Net.set_input_arrays``)."""
