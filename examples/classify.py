#!/usr/bin/env python
"""Classify one image with a Caffe model: a pycaffe script that runs unchanged on npcaffe.

Example (LeNet on a 28 x 28 digit, preprocessed as its MNIST training data was: pixels in
[0, 255] times 0.00390625)::

    python examples/classify.py lenet.prototxt lenet_iter_10000.caffemodel digit.png \\
        --gray --raw-scale 255 --input-scale 0.00390625 --blob ip1 \\
        --save-weights lenet_copy.caffemodel

It does what pycaffe scripts do: load a net with its weights, reshape the input blob for one
image, preprocess the image with ``caffe.io.Transformer``, forward, read the output and an
intermediate blob, and save the weights. It prints ``key: value`` lines::

    input: data (1, 1, 28, 28)
    predicted: 1
    probability: 0.999993
    top: 1 0.999993, 8 4.2e-06, ...
    blob ip1: shape (1, 500) mean 0.1234 max 4.321
    saved: lenet_copy.caffemodel
"""
import argparse
import sys

import numpy as np

try:  # this toolkit's engine; BVLC pycaffe (``import caffe``) where npcaffe is not installed
    import npcaffe as caffe
except ImportError:  # pragma: no cover - only without npcaffe
    import caffe


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='deploy prototxt')
    parser.add_argument('weights', help='weights (.caffemodel or .caffemodel.h5)')
    parser.add_argument('image', help='image file (PNG, JPEG, ...)')
    parser.add_argument('--gray', action='store_true',
                        help='load the image as one intensity channel (e.g. LeNet)')
    parser.add_argument('--raw-scale', type=float, default=None,
                        help='scale [0, 1] pixels by this (255 for most Caffe models)')
    parser.add_argument('--input-scale', type=float, default=None,
                        help='scale applied after the mean (LeNet: 0.00390625)')
    parser.add_argument('--mean', type=float, nargs='+', default=None,
                        help='per-channel mean to subtract (after raw scale)')
    parser.add_argument('--channel-swap', type=int, nargs='+', default=None,
                        help='channel order, e.g. 2 1 0 for RGB -> BGR')
    parser.add_argument('--output', default=None,
                        help='output blob holding the class scores (default: the first output)')
    parser.add_argument('--blob', default=None,
                        help='an intermediate blob to report (its shape, mean and max)')
    parser.add_argument('--top', type=int, default=5, help='how many classes to list')
    parser.add_argument('--save-weights', default=None,
                        help='write the net\'s weights here (binary caffemodel)')
    return parser.parse_args(argv)


def main(args):
    net = caffe.Net(args.model, caffe.TEST, weights=args.weights)
    in_ = net.inputs[0]
    image = caffe.io.load_image(args.image, color=not args.gray)        # H x W x K in [0, 1]

    # one image: reshape the input blob to a batch of 1 at the net's own input size
    _, channels, height, width = net.blobs[in_].data.shape
    net.blobs[in_].reshape(1, channels, height, width)
    net.reshape()
    print(f"input: {in_} {tuple(net.blobs[in_].data.shape)}")

    transformer = caffe.io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))                            # -> K x H x W
    if args.channel_swap:
        transformer.set_channel_swap(in_, args.channel_swap)
    if args.raw_scale is not None:
        transformer.set_raw_scale(in_, args.raw_scale)
    if args.mean:
        transformer.set_mean(in_, np.array(args.mean))
    if args.input_scale is not None:
        transformer.set_input_scale(in_, args.input_scale)
    net.blobs[in_].data[...] = transformer.preprocess(in_, image)

    out = net.forward()
    scores = out[args.output or net.outputs[0]][0].reshape(-1)
    order = np.argsort(-scores)
    print(f"predicted: {order[0]}")
    print(f"probability: {scores[order[0]]:.6g}")
    print('top: ' + ', '.join(f"{k} {scores[k]:.6g}" for k in order[:args.top]))

    if args.blob:
        blob = net.blobs[args.blob].data
        print(f"blob {args.blob}: shape {tuple(blob.shape)} mean {blob.mean():.6g} "
              f"max {blob.max():.6g}")

    if args.save_weights:
        net.save(args.save_weights)
        print(f"saved: {args.save_weights}")
    return 0


if __name__ == '__main__':
    sys.exit(main(parse_args(sys.argv[1:])))
