"""One training step of an FCN at 500x375 (forward, backward, SGD update), run in a child
process so that its peak RSS is the step's own: ``python -m bench.train WORK [options]``.

Prints one JSON object last: the median seconds of a step, the loss, the peak RSS and, with
``--profile``, the forward and backward seconds of every layer.
"""
import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import npcaffe
from bench import measure, models


def layer_times(net):
    """{'forward': [(seconds, name, type)], 'backward': [...]}, one pass of each, layer by
    layer (the diffs a real step would have)."""
    forward, backward = [], []
    for i, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        start = time.perf_counter()
        net._forward(i, i)
        forward.append((time.perf_counter() - start, name, layer.type))
    for i in reversed(range(len(net.layers))):
        start = time.perf_counter()
        net._backward(i, i)
        backward.append((time.perf_counter() - start, net._layer_names[i], net.layers[i].type))
    return {'forward': forward, 'backward': backward}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.train', description=__doc__)
    parser.add_argument('work', type=Path, help='folder with (or for) the random caffemodel')
    parser.add_argument('--variant', default='fcn8s')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    weights = models.random_caffemodel(args.variant, args.work)
    param = models.sgd_solver_param(args.variant, models.train_net_param(args.variant))
    solver = npcaffe.SGDSolver(param)
    solver.net.copy_from(str(weights))
    net = solver.net
    net.blobs['data'].data[...] = models.test_image()
    net.blobs['label'].data[...] = models.test_label()
    solver.step(1)                                           # warm-up: buffers, history
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    result = dict(seconds=statistics.median(times), loss=float(net.blobs['loss'].data),
                  peak=measure.peak_rss_mb())
    if args.profile:
        result['layers'] = layer_times(net)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
