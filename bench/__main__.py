"""Benchmarks of npcaffe against OpenCV's dnn, measured in one run on the same input.

    python -m bench                 # everything
    python -m bench load forward    # some sections
    python -m bench forward train --profile

Sections:

* ``sgemm``: this machine's float32 GEMM throughput now (NumPy, 2048^3), the yardstick;
* ``load``: a 537 MB FCN-8s caffemodel: time and peak RSS, in a child process;
* ``forward``: FCN-8s and FCN-32s deploy at 500x375 with random weights, npcaffe and OpenCV
  dnn timed in turns (so that both see the same load): medians, the ratio npcaffe/OpenCV,
  GFLOP/s, SGEMM GF/s timed in the same turns and the efficiency against it, the largest
  difference between the two outputs; ONNX Runtime (and OpenVINO when ``import openvino``
  works) in the same turns on the net exported by ``npcaffe.onnx`` from the same weights, with
  the same medians, ratio npcaffe/runtime and largest difference;
* ``train``: one SGD step of FCN-8s (forward, backward, update; random label) in a child
  process: median seconds, ratio to OpenCV's FCN-8s forward of this run, peak RSS;
* ``data``: VOCSegDataLayer through a Net on shared/data/voc-mini: images per second;
* ``infer``: infer.py's segmentation of voc-mini's JPEGImages with a width-1/8 FCN-8s
  (random weights): images per second, the net loaded once.

``--profile`` adds per-layer times (forward; forward and backward for ``train``). Absolute times
depend on the machine and its load; the ratios within one run are what to compare. The
targets of issue 7 are printed with each measurement they concern.
"""
import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import npcaffe
from bench import measure, models
from npcaffe import parallel

log = logging.getLogger('bench')
SECTIONS = ('sgemm', 'load', 'forward', 'train', 'data', 'infer')
ROOT = Path(__file__).resolve().parents[1]

#: issue 7's targets
FORWARD_RATIO_TARGET = 1.0        # FCN-8s forward time / OpenCV's
TRAIN_RATIO_TARGET = 4.0          # one training step / OpenCV's FCN-8s forward
TRAIN_RSS_TARGET_MB = 5000
LOAD_SECONDS_TARGET = 2.0


def _met(ok):
    return 'met' if ok else 'NOT met'


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


def print_layer_times(times, what, top=15):
    """``times``: [(seconds, name, type)]; the slowest first."""
    total = sum(t for t, _, _ in times)
    print(f"  per-layer {what} ({total:.2f} s in all; the slowest {top}):")
    for t, name, kind in sorted(times, reverse=True)[:top]:
        print(f"    {name:<16} {kind:<14} {t:7.3f} s  {100 * t / max(total, 1e-12):5.1f}%")


def layer_forward_times(net):
    times = []
    for i, name in enumerate(net._layer_names):
        start = time.perf_counter()
        net._forward(i, i)
        times.append((time.perf_counter() - start, name, net.layers[i].type))
    return times


# -- sections ---------------------------------------------------------------------------------
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
    code = LOAD_CHILD.format(root=str(ROOT), deploy=str(deploy), model=str(model))
    measure.in_child(code)                      # warm the page cache, as Caffe's 1.4 s was
    runs = [measure.in_child(code) for _ in range(3)]
    best = min(runs, key=lambda r: r['seconds'])
    ctx['load'] = best
    print(f"caffemodel load (FCN-8s, {size_mb:.0f} MiB, warm cache): {best['seconds']:.2f} s "
          f"[target < {LOAD_SECONDS_TARGET:g} s: {_met(best['seconds'] < LOAD_SECONDS_TARGET)}]; "
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


def _sgemm_once(a):
    start = time.perf_counter()
    a @ a
    return 2 * a.shape[0] ** 3 / (time.perf_counter() - start) / 1e9


def _onnx_runs(net, image, path):
    """{label: forward()} for ONNX Runtime and OpenVINO (those installed) on ``net`` exported
    to ``path`` through npcaffe.onnx; each returns the 'score' output."""
    try:
        import onnxruntime as ort
        from npcaffe.onnx import export
    except ImportError:
        print("ONNX Runtime: not installed (pip install 'fcn-npcaffe[onnx]'); skipped")
        return {}
    export(net, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = parallel.num_threads()      # the same cores for all
    sess = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    runs = {f'ORT {ort.__version__}': lambda: sess.run(['score'], {'data': image})[0]}
    try:
        import openvino
    except ImportError:
        log.info("OpenVINO not installed; it is optional")
        return runs
    compiled = openvino.Core().compile_model(str(path), 'CPU')
    runs[f'OpenVINO {openvino.__version__}'] = lambda: compiled([image])[compiled.output('score')]
    return runs


def section_forward(ctx):
    cv2 = _opencv()
    if cv2 is None:
        print("OpenCV dnn: not installed (pip install 'opencv-python-headless<5'); "
              "npcaffe alone")
    else:
        cv2.setNumThreads(parallel.num_threads())          # the same cores for both
        print(f"OpenCV {cv2.__version__} dnn ({cv2.getNumThreads()} threads, its default "
              f"Winograd on) against npcaffe ({parallel.num_threads()} threads)")
    image = models.test_image()
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    for variant in ('fcn8s', 'fcn32s'):
        deploy = models.deploy_prototxt(variant, ctx['tmp'])
        model = models.random_caffemodel(variant, ctx['tmp'])
        net = npcaffe.Net(str(deploy), str(model), npcaffe.TEST)
        net.blobs['data'].data[...] = image
        runs = {'npcaffe': net.forward}
        if cv2 is not None:
            cv_net = cv2.dnn.readNetFromCaffe(str(deploy), str(model))

            def run_cv(cv_net=cv_net):
                cv_net.setInput(image)
                return cv_net.forward('score')
            runs['opencv'] = run_cv
        onnx_runs = _onnx_runs(net, image, Path(ctx['tmp']) / f'{variant}.onnx')
        runs.update(onnx_runs)
        times = {name: [] for name in runs}
        sgemm = []
        for fn in runs.values():                      # warm-up
            fn()
        for _ in range(ctx['repeat']):                # in turns: the same load for both
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
            sgemm.append(_sgemm_once(a))
        t_np = statistics.median(times['npcaffe'])
        gf = statistics.median(sgemm)
        flops = conv_flops(net)
        ours = net.blobs['score'].data.copy()
        line = (f"{variant} forward 500x375: npcaffe {t_np:.2f} s, {flops / 1e9:.0f} GFLOP, "
                f"{flops / t_np / 1e9:.1f} GFLOP/s; SGEMM {gf:.0f} GFLOP/s in the same turns, "
                f"efficiency {flops / t_np / 1e9 / gf:.2f}")
        if cv2 is not None:
            t_cv = statistics.median(times['opencv'])
            theirs = runs['opencv']()
            diff = float(np.abs(theirs - ours).max())
            # each turn's two runs saw nearly the same load: the median of the turns' ratios
            # is steadier than the ratio of the medians when the load drifts
            turns = sorted(a / b for a, b in zip(times['npcaffe'], times['opencv']))
            ratio = statistics.median(turns)
            line += (f"; OpenCV {t_cv:.2f} s ({flops / t_cv / 1e9:.1f} GFLOP/s); ratio "
                     f"npcaffe/OpenCV {ratio:.2f} (median of {len(turns)} turns, "
                     f"{turns[0]:.2f}-{turns[-1]:.2f})")
            if variant == 'fcn8s':
                line += f" [target <= {FORWARD_RATIO_TARGET:g}: {_met(ratio <= 1.0)}]"
            line += f"; max |difference| {diff:.3g} (scores up to {np.abs(ours).max():.3g})"
            ctx[f'opencv_{variant}'] = t_cv
        ctx[f'forward_{variant}'] = t_np
        print(line)
        for name in onnx_runs:
            t_rt = statistics.median(times[name])
            diff = float(np.abs(runs[name]() - ours).max())
            turns = sorted(a / b for a, b in zip(times['npcaffe'], times[name]))
            print(f"{variant} forward 500x375: {name} (npcaffe.onnx export) {t_rt:.2f} s "
                  f"({flops / t_rt / 1e9:.1f} GFLOP/s); ratio npcaffe/{name.split()[0]} "
                  f"{statistics.median(turns):.2f} (median of {len(turns)} turns, "
                  f"{turns[0]:.2f}-{turns[-1]:.2f}); max |difference| {diff:.3g} (scores up "
                  f"to {np.abs(ours).max():.3g})")
        if ctx['profile']:
            print_layer_times(layer_forward_times(net), 'forward (npcaffe)')
        del net, runs


def section_train(ctx):
    args = [str(ctx['tmp']), '--repeat', str(ctx['repeat'])]
    if ctx['profile']:
        args.append('--profile')
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench import train; " \
           f"sys.exit(train.main({args!r}))"
    result = measure.in_child(code)
    seconds, peak = result['seconds'], result['peak']
    line = (f"fcn8s training step 500x375 (forward + backward + SGD update, random label; "
            f"child process): {seconds:.2f} s")
    reference = ctx.get('opencv_fcn8s')
    if reference:
        ratio = seconds / reference
        line += (f", {ratio:.2f}x OpenCV's forward of this run "
                 f"[target <= {TRAIN_RATIO_TARGET:g}x: {_met(ratio <= TRAIN_RATIO_TARGET)}]")
    line += (f"; peak RSS {peak:.0f} MiB [target < {TRAIN_RSS_TARGET_MB} MB: "
             f"{_met(peak * 2**20 < TRAIN_RSS_TARGET_MB * 1e6)}]")
    print(line)
    if 'layers' in result:
        for what in ('forward', 'backward'):
            print_layer_times([tuple(t) for t in result['layers'][what]],
                              f'{what} (training step)')


def section_data(ctx):
    voc = models.voc_mini(ROOT)
    if voc is None:
        print("data layer: shared/data/voc-mini not found (set FCN_SHARED); skipped")
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    param = models.data_layer_net(voc)
    path = ctx['tmp'] / 'voc_data.prototxt'
    from npcaffe import formats
    formats.write_text(path, param)
    net = npcaffe.Net(str(path), npcaffe.TRAIN)
    count = 2 * len((voc / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split())
    net.forward()                                   # the first sample (and the prefetch start)
    start = time.perf_counter()
    pixels = 0
    for _ in range(count):
        net.forward()
        pixels += net.blobs['data'].data.shape[2] * net.blobs['data'].data.shape[3]
    seconds = time.perf_counter() - start
    print(f"data layer (VOCSegDataLayer through a Net, voc-mini train, random order, prefetch): "
          f"{count / seconds:.1f} images/s ({1000 * seconds / count:.1f} ms an image, "
          f"{pixels / count / 1e3:.0f} kpixels on average)")


def section_infer(ctx):
    voc = models.voc_mini(ROOT)
    if voc is None:
        print("infer.py: shared/data/voc-mini not found (set FCN_SHARED); skipped")
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fcn import segment as infer
    width = 0.125
    deploy = models.deploy_prototxt('fcn8s', ctx['tmp'], width=width)
    weights = models.random_caffemodel('fcn8s', ctx['tmp'], width=width)
    images = infer.collect_images([voc / 'JPEGImages'])
    out = ctx['tmp'] / 'infer_out'
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    seg = infer.Segmenter(deploy, weights)
    loaded = time.perf_counter()
    for path in images:
        infer.segment_file(seg, path, out)
    seconds = time.perf_counter() - loaded
    print(f"infer.py (FCN-8s at width 1/8, random weights, {len(images)} voc-mini images, "
          f"label PNGs written): {len(images) / seconds:.1f} images/s "
          f"({1000 * seconds / len(images):.0f} ms an image; the net loaded once in "
          f"{loaded - start:.2f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sections', nargs='*', metavar='SECTION',
                        help=f"some of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument('--profile', action='store_true',
                        help='per-layer times (forward; forward and backward for train)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs (turns) per median')
    parser.add_argument('--work', type=Path, help='folder for generated models, kept '
                        '(default: a temporary folder)')
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SECTIONS)}")
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    sections = args.sections or SECTIONS
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = dict(tmp=work, profile=args.profile, repeat=args.repeat)
        print(f"npcaffe {npcaffe.__version__}, NumPy {np.__version__}, Python "
              f"{sys.version.split()[0]}; {parallel.num_threads()} worker threads")
        for name in SECTIONS:
            if name in sections:
                globals()[f'section_{name}'](ctx)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
