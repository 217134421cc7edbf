"""Benchmarks of npcaffe against OpenCV's dnn, measured in one run on the same input.

    python -m bench                 # everything
    python -m bench load forward    # some sections
    python -m bench forward --profile

Sections: ``sgemm`` (this machine's float32 GEMM throughput now, the yardstick), ``load``
(a 537 MB FCN-8s caffemodel: time and peak RSS, in a child process), ``forward`` (FCN-8s and
FCN-32s deploy at 500x375 with random weights: median seconds, npcaffe/OpenCV ratio, GFLOP/s,
efficiency against SGEMM, largest output difference). Absolute times depend on the machine and
its load; the ratios within one run are what to compare.
"""
import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import npcaffe
from bench import measure, models

log = logging.getLogger('bench')
SECTIONS = ('sgemm', 'load', 'forward')


def conv_flops(net):
    """Multiply-adds x 2 of the net's Convolution, Deconvolution and InnerProduct layers at
    its current blob shapes."""
    total = 0
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type not in ('Convolution', 'Deconvolution', 'InnerProduct'):
            continue
        weights = layer.blobs[0].count
        if layer.type == 'InnerProduct':
            positions = net.blobs[net.top_names[name][0]].shape[0]
        else:
            side = net.top_names[name][0] if layer.type == 'Convolution' else \
                net.bottom_names[name][0]
            shape = net.blobs[side].shape
            positions = shape[0] * int(np.prod(shape[2:]))
        total += 2 * weights * positions
    return total


def section_sgemm(ctx):
    ctx['sgemm'] = measure.sgemm_gflops()
    print(f"SGEMM (NumPy, 2048^3, float32): {ctx['sgemm']:.1f} GFLOP/s")


LOAD_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import npcaffe
from bench import measure
net = npcaffe.Net({deploy!r}, npcaffe.TEST)
base = measure.current_rss_mb()
start = time.perf_counter()
net.copy_from({model!r})
seconds = time.perf_counter() - start
print(json.dumps(dict(seconds=seconds, base=base, peak=measure.peak_rss_mb())))
"""


def section_load(ctx):
    model = models.random_caffemodel('fcn8s', ctx['tmp'])
    deploy = models.deploy_prototxt('fcn8s', ctx['tmp'], shape=(1, 3, 64, 64))
    size_mb = model.stat().st_size / 2**20
    code = LOAD_CHILD.format(root=str(ctx['root']), deploy=str(deploy), model=str(model))
    measure.in_child(code)                      # warm the page cache, as Caffe's 1.4 s was
    runs = [measure.in_child(code) for _ in range(3)]
    best = min(runs, key=lambda r: r['seconds'])
    ctx['load'] = best
    print(f"caffemodel load (FCN-8s, {size_mb:.0f} MiB, warm cache): {best['seconds']:.2f} s; "
          f"peak RSS {best['peak']:.0f} MiB, of which {best['peak'] - best['base']:.0f} MiB "
          f"above the built net ({(best['peak'] - best['base']) / size_mb:.2f}x the file)")


def _opencv():
    try:
        import cv2
    except ImportError:
        return None
    if not hasattr(cv2, 'dnn') or not hasattr(cv2.dnn, 'readNetFromCaffe'):
        return None
    return cv2


def section_forward(ctx):
    cv2 = _opencv()
    if cv2 is None:
        print("OpenCV dnn: not installed (pip install 'opencv-python-headless<5'); "
              "npcaffe alone")
    sgemm = ctx.get('sgemm') or measure.sgemm_gflops()
    image = models.test_image()
    for variant in ('fcn8s', 'fcn32s'):
        deploy = models.deploy_prototxt(variant, ctx['tmp'])
        model = models.random_caffemodel(variant, ctx['tmp'])
        net = npcaffe.Net(str(deploy), str(model), npcaffe.TEST)
        net.blobs['data'].data[...] = image

        def run_np():
            net.forward()
        t_np = measure.median_time(run_np, repeat=ctx['repeat'])
        flops = conv_flops(net)
        ours = net.blobs['score'].data.copy()
        line = (f"{variant} forward 500x375: npcaffe {t_np:.2f} s, {flops / 1e9:.0f} GFLOP, "
                f"{flops / t_np / 1e9:.1f} GFLOP/s, efficiency {flops / t_np / 1e9 / sgemm:.2f} "
                f"of SGEMM")
        if cv2 is not None:
            cv_net = cv2.dnn.readNetFromCaffe(str(deploy), str(model))

            def run_cv():
                cv_net.setInput(image)
                return cv_net.forward('score')
            t_cv = measure.median_time(run_cv, repeat=ctx['repeat'])
            theirs = run_cv()
            diff = float(np.abs(theirs - ours).max())
            line += (f"; OpenCV {t_cv:.2f} s; ratio npcaffe/OpenCV {t_np / t_cv:.2f}; "
                     f"max |difference| {diff:.3g} (scores up to {np.abs(ours).max():.3g})")
            ctx[f'opencv_{variant}'] = t_cv
        ctx[f'forward_{variant}'] = t_np
        print(line)
        if ctx['profile']:
            profile(net)


def profile(net, repeat=1):
    """Print each layer's forward time, slowest first."""
    times = []
    for i, name in enumerate(net._layer_names):
        start = time.perf_counter()
        for _ in range(repeat):
            net._forward(i, i)
        times.append(((time.perf_counter() - start) / repeat, name, net.layers[i].type))
    total = sum(t for t, _, _ in times)
    print(f"  per-layer forward ({total:.2f} s in all):")
    for t, name, kind in sorted(times, reverse=True)[:15]:
        print(f"    {name:<16} {kind:<14} {t:7.3f} s  {100 * t / total:5.1f}%")


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sections', nargs='*', choices=SECTIONS + ((),), default=[],
                        metavar='SECTION', help=f"some of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument('--profile', action='store_true', help='per-layer forward times')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per median')
    parser.add_argument('--work', type=Path, help='folder for generated models '
                        '(default: a temporary folder)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    sections = args.sections or SECTIONS
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = dict(tmp=work, root=Path(__file__).resolve().parents[1], profile=args.profile,
                   repeat=args.repeat)
        print(f"npcaffe {npcaffe.__version__}, NumPy {np.__version__}, Python "
              f"{sys.version.split()[0]}")
        for name in SECTIONS:
            if name in sections:
                globals()[f'section_{name}'](ctx)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
