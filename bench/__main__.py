"""Benchmarks of npcaffe against OpenCV's dnn, ONNX Runtime and PyTorch, measured in one run on
the same input.

    python -m bench                          # everything (about 14 minutes on 2 cores)
    python -m bench load forward             # some sections
    python -m bench forward --size 1000x750  # one size
    python -m bench memory | train | tile    # issue 18's parts alone
    python -m bench forward train --profile

Sections:

* ``sgemm``: this machine's float32 GEMM throughput now (NumPy, 2048^3), the yardstick;
* ``load``: a 537 MB FCN-8s caffemodel: time and peak RSS, in a child process;
* ``forward``: FCN-8s and FCN-32s deploy at 500x375 and 1000x750 (``--size``) with random
  weights, npcaffe and OpenCV dnn timed in turns (so that both see the same load): medians,
  the ratio npcaffe/OpenCV, GFLOP/s, SGEMM GF/s timed in the same turns and the efficiency
  against it, the largest difference between the two outputs; ONNX Runtime (and OpenVINO when
  ``import openvino`` works) in the same turns on the net exported by ``npcaffe.onnx`` from the
  same weights, and PyTorch's CPU peer (``bench.torch_peer``, when torch imports), with the
  same medians, ratio npcaffe/peer and largest difference;
* ``memory``: peak RSS (VmHWM, weights included) of one FCN-8s forward at 1000x750, each engine
  in a child process of its own: npcaffe with the memory rule (``reuse_memory=True``), npcaffe
  keeping every blob, ONNX Runtime, OpenCV (``bench.memory``);
* ``train``: one SGD step of FCN-8s (forward, backward, update; random label) in a child
  process: median seconds, ratio to OpenCV's FCN-8s forward of this run, peak RSS; then the
  PyTorch CPU peer of the same net (``bench.torch_peer``: built from the same prototxt and
  caffemodel, its forward and loss checked against npcaffe's) and its step with Caffe's SGD
  settings in a child process: seconds, ratio npcaffe/PyTorch, peak RSS of both;
* ``tile``: an 8000x6000 synthetic image through ``fcn.tiles`` (``fcn infer --tile``) on
  full-width FCN-8s in a child process: peak RSS and time (``--tiles K``: the K largest windows
  run, the whole tiling's time extrapolated; 0: all, about 50 minutes here); and the tiled
  scores against the whole-image forward at 1000x750 (width 1/8: the same geometry);
* ``data``: VOCSegDataLayer through a Net on shared/data/voc-mini: images per second;
* ``infer``: infer.py's segmentation of voc-mini's JPEGImages with a width-1/8 FCN-8s
  (random weights): images per second, the net loaded once.

The run ends with a summary of issue 18's targets, each with this run's number and whether it
was met. ``--profile`` adds per-layer times (forward; forward and backward for ``train``).
Absolute times depend on the machine and its load (printed at the start and the end); the
ratios within one run are what to compare. The targets of issues 7 and 18 are printed with each
measurement they concern.

PyTorch is optional and not an extra of the package (it is large): ``pip install
torch==2.13.0`` (the CPU wheel); without it the bench prints a note and skips its rows.
ONNX Runtime and OpenCV come with ``pip install -e '.[bench]'``.
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
SECTIONS = ('sgemm', 'load', 'forward', 'memory', 'train', 'tile', 'data', 'infer')
ROOT = Path(__file__).resolve().parents[1]

#: issue 7's targets
FORWARD_RATIO_TARGET = 1.0        # FCN-8s forward time / OpenCV's
TRAIN_RATIO_TARGET = 4.0          # one training step / OpenCV's FCN-8s forward
TRAIN_RSS_TARGET_MB = 5000
LOAD_SECONDS_TARGET = 2.0

#: issue 18's comparisons; where the issue names no number, npcaffe is to be no slower (no
#: larger) than its peer of the same run
ORT_RATIO_TARGET = 1.0            # npcaffe forward time / ONNX Runtime's
MEMORY_RATIO_TARGET = 1.0         # npcaffe (reuse_memory) peak RSS / ONNX Runtime's
TRAIN_TORCH_TARGET = 1.0          # npcaffe training step / PyTorch CPU's
TILE_RSS_TARGET_GB = 4.0          # 8000x6000 through fcn.tiles
TILE_EQUALITY_TARGET = 1e-5       # tiled scores against the whole image's, relative
TORCH_AGREEMENT = 1e-4            # the PyTorch peer's forward against npcaffe's, relative

FORWARD_SIZES = ((500, 375), (1000, 750))
MEMORY_SIZE = (1000, 750)
TILE_SIZE = (8000, 6000)
TILE_CHECK_SIZE, TILE_CHECK_TILE, TILE_CHECK_WIDTH = (1000, 750), 256, 0.125
FORWARD_REPEAT = 3                # turns at 500x375 (--repeat overrides every count)
LARGE_REPEAT = 2                  # turns at the larger sizes
TRAIN_REPEAT = 2                  # timed training steps of each engine
TILES = 2                         # windows of the 8000x6000 tiling run (0: all)


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
    compiled = openvino.Core().compile_model(                   # the same cores for all
        str(path), 'CPU', {'INFERENCE_NUM_THREADS': parallel.num_threads()})
    runs[f"OpenVINO {openvino.__version__.split('-')[0]}"] = lambda: compiled([image])[compiled.output('score')]
    return runs


def _torch_runs(net, image):
    """{label: forward()} for the PyTorch CPU peer of ``net`` (bench.torch_peer: the same
    layers and weights) when PyTorch is installed; returns the 'score' output."""
    from bench import torch_peer
    if not torch_peer.available():
        log.info("PyTorch not installed; it is optional")
        return {}
    import torch
    torch.set_num_threads(parallel.num_threads())               # the same cores for all
    module = torch_peer.build_module(net)
    data = torch.from_numpy(image)

    def run():
        with torch.no_grad():
            return module(data)['score'].numpy()
    return {f'PyTorch {torch.__version__}': run}


def _size(text):
    """'WxH' -> (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT (500x375), not {text!r}")
    return w, h


def _turn_ratios(times, a, b):
    """Sorted per-turn ratios a/b: each turn's two runs saw nearly the same load, so the
    median of the turns' ratios is steadier than the ratio of the medians."""
    return sorted(x / y for x, y in zip(times[a], times[b]))


def section_forward(ctx):
    cv2 = _opencv()
    if cv2 is None:
        print("OpenCV dnn: not installed (pip install 'opencv-python-headless<5'); "
              "npcaffe alone")
    else:
        cv2.setNumThreads(parallel.num_threads())          # the same cores for both
        print(f"OpenCV {cv2.__version__} dnn ({cv2.getNumThreads()} threads, its default "
              f"Winograd on) against npcaffe ({parallel.num_threads()} threads)")
    for size in ctx['sizes']:
        repeat = ctx['repeat'] or (FORWARD_REPEAT if size == (500, 375) else LARGE_REPEAT)
        for variant in ('fcn8s', 'fcn32s'):
            _forward_one(ctx, cv2, variant, size, repeat)


def _forward_one(ctx, cv2, variant, size, repeat):
    w, h = size
    label = f"{w}x{h}"
    shape = (1, 3, h, w)
    image = models.test_image(shape)
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    deploy = models.deploy_prototxt(variant, ctx['tmp'], shape=shape)
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
    onnx_runs = _onnx_runs(net, image, Path(ctx['tmp']) / f'{variant}_{label}.onnx')
    torch_runs = _torch_runs(net, image)
    runs.update(onnx_runs)
    runs.update(torch_runs)
    times = {name: [] for name in runs}
    sgemm = []
    _running(f"{variant} forward {label}: {', '.join(runs)}, a warm-up and {repeat} turns")
    for fn in runs.values():                      # warm-up
        fn()
    for _ in range(repeat):                       # in turns: the same load for all
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        sgemm.append(_sgemm_once(a))
    t_np = statistics.median(times['npcaffe'])
    gf = statistics.median(sgemm)
    flops = conv_flops(net)
    ours = net.blobs['score'].data.copy()
    efficiency = flops / t_np / 1e9 / gf
    line = (f"{variant} forward {label}: npcaffe {t_np:.2f} s, {flops / 1e9:.0f} GFLOP, "
            f"{flops / t_np / 1e9:.1f} GFLOP/s; SGEMM {gf:.0f} GFLOP/s in the same turns, "
            f"efficiency {efficiency:.2f}")
    ctx['results'][f'efficiency {variant} {label}'] = efficiency
    if cv2 is not None:
        t_cv = statistics.median(times['opencv'])
        theirs = runs['opencv']()
        diff = float(np.abs(theirs - ours).max())
        turns = _turn_ratios(times, 'npcaffe', 'opencv')
        ratio = statistics.median(turns)
        ctx['results'].setdefault(f'peers {variant} {label}', {})['OpenCV'] = ratio
        line += (f"; OpenCV {t_cv:.2f} s ({flops / t_cv / 1e9:.1f} GFLOP/s); ratio "
                 f"npcaffe/OpenCV {ratio:.2f} (median of {len(turns)} turns, "
                 f"{turns[0]:.2f}-{turns[-1]:.2f})")
        if variant == 'fcn8s' and size == (500, 375):
            line += f" [issue 7 target <= {FORWARD_RATIO_TARGET:g}: {_met(ratio <= 1.0)}]"
        line += f"; max |difference| {diff:.3g} (scores up to {np.abs(ours).max():.3g})"
        if size == (500, 375):
            ctx[f'opencv_{variant}'] = t_cv
    if size == (500, 375):
        ctx[f'forward_{variant}'] = t_np
    print(line)
    for name in list(onnx_runs) + list(torch_runs):
        t_rt = statistics.median(times[name])
        diff = float(np.abs(runs[name]() - ours).max())
        turns = _turn_ratios(times, 'npcaffe', name)
        ratio = statistics.median(turns)
        short = name.split()[0]
        if short != 'ORT':
            ctx['results'].setdefault(f'peers {variant} {label}', {})[short] = ratio
        target = ''
        if short == 'ORT':
            ctx['results'][f'forward {variant} {label}'] = ratio
            target = (f" [issue 18 target <= {ORT_RATIO_TARGET:g}: "
                      f"{_met(ratio <= ORT_RATIO_TARGET)}]")
        how = 'npcaffe.onnx export' if name in onnx_runs else 'bench.torch_peer, CPU'
        print(f"{variant} forward {label}: {name} ({how}) {t_rt:.2f} s "
              f"({flops / t_rt / 1e9:.1f} GFLOP/s); ratio npcaffe/{short} "
              f"{ratio:.2f} (median of {len(turns)} turns, "
              f"{turns[0]:.2f}-{turns[-1]:.2f}){target}; max |difference| {diff:.3g} "
              f"(scores up to {np.abs(ours).max():.3g})")
    if ctx['profile']:
        print_layer_times(layer_forward_times(net), f'forward (npcaffe, {label})')
    del net, runs


def _running(what):
    """A line on stderr before a measurement that takes a while (the results go to stdout):
    the run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {what} ...", file=sys.stderr, flush=True)


def _child(module, args):
    """Run ``python -m``-style ``module.main(args)`` in a child process; its JSON result."""
    _running(f"bench.{module} {' '.join(str(a) for a in args)} (a child process)")
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench import {module}; "
            f"sys.exit({module}.main({[str(a) for a in args]!r}))")
    return measure.in_child(code)


def section_memory(ctx):
    w, h = MEMORY_SIZE
    shape = (1, 3, h, w)
    variant = 'fcn8s'
    deploy = models.deploy_prototxt(variant, ctx['tmp'], shape=shape)
    model = models.random_caffemodel(variant, ctx['tmp'])
    engines = ['npcaffe', 'npcaffe-keep']
    onnx_path = Path(ctx['tmp']) / f'{variant}_{w}x{h}.onnx'
    try:
        import onnxruntime  # noqa: F401
        from npcaffe.onnx import export
        if not onnx_path.exists():
            export(npcaffe.Net(str(deploy), str(model), npcaffe.TEST), onnx_path)
        engines.append('onnxruntime')
    except ImportError:
        print("memory: ONNX Runtime not installed; its row skipped")
    if _opencv() is not None:
        engines.append('opencv')
    peaks = {}
    for engine in engines:
        args = ['forward', engine, deploy, model] + (['--onnx', onnx_path]
                                                      if engine == 'onnxruntime' else [])
        r = _child('memory', args)
        peaks[engine] = r['peak']
        what = {'npcaffe': 'npcaffe, reuse_memory=True', 'npcaffe-keep':
                'npcaffe, every blob kept', 'onnxruntime': 'ONNX Runtime, npcaffe.onnx export',
                'opencv': 'OpenCV dnn'}[engine]
        print(f"memory {variant} forward {w}x{h} ({what}; child process): peak RSS "
              f"{r['peak']:.0f} MiB (interpreter and imports {r['base']:.0f} MiB), forward "
              f"{r['seconds']:.2f} s")
    if 'onnxruntime' in peaks:
        ratio = peaks['npcaffe'] / peaks['onnxruntime']
        ctx['results']['memory'] = (ratio, peaks['npcaffe'], peaks['onnxruntime'])
        print(f"memory {variant} {w}x{h}: peak RSS npcaffe (reuse_memory) / ONNX Runtime "
              f"{ratio:.2f} [issue 18 target <= {MEMORY_RATIO_TARGET:g}: "
              f"{_met(ratio <= MEMORY_RATIO_TARGET)}]; the memory rule saves "
              f"{peaks['npcaffe-keep'] - peaks['npcaffe']:.0f} MiB")


def _torch_check(ctx):
    """The PyTorch peer's forward against npcaffe's at 500x375 (and the loss against NumPy's
    of npcaffe's scores); returns True when they agree within TORCH_AGREEMENT."""
    from bench import torch_peer
    import torch
    torch.set_num_threads(parallel.num_threads())
    deploy = models.deploy_prototxt('fcn8s', ctx['tmp'])
    model = models.random_caffemodel('fcn8s', ctx['tmp'])
    net = npcaffe.Net(str(deploy), str(model), npcaffe.TEST, reuse_memory=True)
    module = torch_peer.build_module(net)
    image, label = models.test_image(), models.test_label()
    diff, scale, ours = torch_peer.compare_forward(net, module, image)
    with torch.no_grad():
        theirs = torch_peer.loss(module(torch.from_numpy(image))['score'],
                                 torch.from_numpy(label)).item()
    reference = torch_peer.numpy_loss(ours, label)
    loss_diff = abs(theirs - reference) / max(abs(reference), 1e-30)
    ok = diff / scale <= TORCH_AGREEMENT and loss_diff <= TORCH_AGREEMENT
    ctx['results']['torch agreement'] = (diff / scale, loss_diff)
    print(f"PyTorch {torch.__version__} peer of fcn8s (same prototxt and caffemodel): forward "
          f"500x375 max |difference| to npcaffe {diff:.3g} (scores up to {scale:.3g}, "
          f"{diff / scale:.2g} relative); loss {theirs:.6g} against {reference:.6g} from "
          f"npcaffe's scores ({loss_diff:.2g} relative) [agreement <= {TORCH_AGREEMENT:g}: "
          f"{_met(ok)}]")
    del net, module
    return ok


def section_train(ctx):
    repeat = ctx['repeat'] or TRAIN_REPEAT
    args = [str(ctx['tmp']), '--repeat', str(repeat)]
    if ctx['profile']:
        args.append('--profile')
    result = _child('train', args)
    seconds, peak = result['seconds'], result['peak']
    line = (f"fcn8s training step 500x375 (npcaffe: forward + backward + SGD update, random "
            f"label; child process): {seconds:.2f} s (median of {repeat})")
    reference = ctx.get('opencv_fcn8s')
    if reference:
        ratio = seconds / reference
        line += (f", {ratio:.2f}x OpenCV's forward of this run "
                 f"[issue 7 target <= {TRAIN_RATIO_TARGET:g}x: "
                 f"{_met(ratio <= TRAIN_RATIO_TARGET)}]")
    line += (f"; peak RSS {peak:.0f} MiB [issue 7 target < {TRAIN_RSS_TARGET_MB} MB: "
             f"{_met(peak * 2**20 < TRAIN_RSS_TARGET_MB * 1e6)}]")
    print(line)
    if 'layers' in result:
        for what in ('forward', 'backward'):
            print_layer_times([tuple(t) for t in result['layers'][what]],
                              f'{what} (training step)')
    from bench import torch_peer
    if not torch_peer.available():
        print("PyTorch: not installed (pip install torch==2.13.0, the CPU wheel); its training "
              "rows skipped")
        return
    _torch_check(ctx)
    peer = _child('torch_peer', [str(ctx['tmp']), '--repeat', str(repeat)])
    ratio = seconds / peer['seconds']
    ctx['results']['train'] = (ratio, seconds, peer['seconds'], peak, peer['peak'])
    print(f"fcn8s training step 500x375 (PyTorch {peer['torch']} CPU, {peer['threads']} "
          f"threads, the same net, weights, SGD settings and loss, no dropout; child process): "
          f"{peer['seconds']:.2f} s (median of {repeat}), peak RSS {peer['peak']:.0f} MiB; "
          f"ratio npcaffe/PyTorch {ratio:.2f} [issue 18 target <= {TRAIN_TORCH_TARGET:g}: "
          f"{_met(ratio <= TRAIN_TORCH_TARGET)}]; peak RSS npcaffe/PyTorch "
          f"{peak / peer['peak']:.2f}")


def section_tile(ctx):
    w, h = TILE_SIZE
    r = _child('memory', ['tile', ctx['tmp'], '--size', f'{w}x{h}', '--tiles', ctx['tiles']])
    ok = r['peak'] * 2**20 < TILE_RSS_TARGET_GB * 1e9
    ctx['results']['tile rss'] = r['peak']
    subset = (f"the {r['tiles_run']} largest of its {r['tiles_total']} tiles run, all of them "
              f"about {r['estimate']:.0f} s by pixels" if r['tiles_run'] < r['tiles_total']
              else f"all {r['tiles_total']} tiles")
    print(f"tile fcn8s {w}x{h} synthetic image (fcn.tiles, as infer --tile; full width, random "
          f"weights; child process): tile {r['tile']} + margin {r['margin']} (windows up to "
          f"{r['window'][0]}x{r['window'][1]}), {subset}: {r['seconds']:.1f} s "
          f"({r['seconds'] / r['tiles_run']:.1f} s a tile), net load {r['load']:.1f} s; peak "
          f"RSS {r['peak']:.0f} MiB ({r['peak'] * 2**20 / 1e9:.3f} GB) [issue 18 target < "
          f"{TILE_RSS_TARGET_GB:g} GB: {_met(ok)}]")
    from bench import memory
    ew, eh = TILE_CHECK_SIZE
    diff, count, tile, margin = memory.tile_equality(ctx['tmp'], TILE_CHECK_SIZE,
                                                     TILE_CHECK_TILE, TILE_CHECK_WIDTH)
    ctx['results']['tile equality'] = diff
    print(f"tile fcn8s {ew}x{eh} (width 1/{1 / TILE_CHECK_WIDTH:g}, the same geometry): "
          f"{count} tiles of {tile} + margin {margin} against the whole-image forward: max "
          f"|difference| {diff:.2g} of the largest score [issue 18 target <= "
          f"{TILE_EQUALITY_TARGET:g}: {_met(diff <= TILE_EQUALITY_TARGET)}]")


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


def _loadavg():
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return 'unknown'


def summary(ctx):
    """Each issue-18 target this run measured: the number, the target, met or not."""
    r = ctx['results']
    rows = []
    for size in ctx['sizes']:
        label = f"{size[0]}x{size[1]}"
        for variant in ('fcn8s', 'fcn32s'):
            key = f'forward {variant} {label}'
            if key in r:
                rows.append((f"{variant} forward {label}, npcaffe/ORT time", f"{r[key]:.2f}",
                             f"<= {ORT_RATIO_TARGET:g}", r[key] <= ORT_RATIO_TARGET))
            key = f'peers {variant} {label}'
            if r.get(key):
                rows.append((f"{variant} forward {label}, npcaffe/the other engines' time",
                             ', '.join(f"{k} {v:.2f}" for k, v in r[key].items()), "<= 1",
                             max(r[key].values()) <= 1))
            key = f'efficiency {variant} {label}'
            if key in r:
                rows.append((f"{variant} forward {label}, efficiency against SGEMM",
                             f"{r[key]:.2f}", "reported", None))
    if 'memory' in r:
        ratio, ours, theirs = r['memory']
        rows.append((f"peak RSS fcn8s {MEMORY_SIZE[0]}x{MEMORY_SIZE[1]}, npcaffe "
                     f"(reuse_memory)/ORT", f"{ratio:.2f} ({ours:.0f}/{theirs:.0f} MiB)",
                     f"<= {MEMORY_RATIO_TARGET:g}", ratio <= MEMORY_RATIO_TARGET))
    if 'tile rss' in r:
        rows.append((f"tile {TILE_SIZE[0]}x{TILE_SIZE[1]} peak RSS",
                     f"{r['tile rss']:.0f} MiB ({r['tile rss'] * 2**20 / 1e9:.2f} GB)",
                     f"< {TILE_RSS_TARGET_GB:g} GB",
                     r['tile rss'] * 2**20 < TILE_RSS_TARGET_GB * 1e9))
    if 'tile equality' in r:
        rows.append(("tiled against whole scores, relative", f"{r['tile equality']:.2g}",
                     f"<= {TILE_EQUALITY_TARGET:g}", r['tile equality'] <= TILE_EQUALITY_TARGET))
    if 'torch agreement' in r:
        forward, loss = r['torch agreement']
        rows.append(("PyTorch peer against npcaffe (forward; loss), relative",
                     f"{forward:.2g}; {loss:.2g}", f"<= {TORCH_AGREEMENT:g}",
                     max(forward, loss) <= TORCH_AGREEMENT))
    if 'train' in r:
        ratio, ours, theirs, rss, peer_rss = r['train']
        rows.append(("fcn8s training step, npcaffe/PyTorch time",
                     f"{ratio:.2f} ({ours:.1f}/{theirs:.1f} s)", f"<= {TRAIN_TORCH_TARGET:g}",
                     ratio <= TRAIN_TORCH_TARGET))
        rows.append(("fcn8s training step, peak RSS npcaffe/PyTorch",
                     f"{rss / peer_rss:.2f} ({rss:.0f}/{peer_rss:.0f} MiB)", "< 1",
                     rss < peer_rss))
    if not rows:
        return
    print(f"\nissue 18 summary (load average {ctx['load_start']} at the start, "
          f"{_loadavg()} at the end; {time.perf_counter() - ctx['start']:.0f} s):")
    for what, value, target, ok in rows:
        verdict = '' if ok is None else _met(ok)
        print(f"  {what:<58} {value:<24} {target:<9} {verdict}")


def _winograd_path():
    """Which Winograd transforms this run uses (npcaffe.winograd_jit)."""
    from npcaffe import winograd_jit
    if winograd_jit.kernels() is None:
        return "Winograd transforms on NumPy (Numba not installed, or NPCAFFE_JIT=0)"
    import numba
    return f"Winograd transforms compiled by Numba {numba.__version__}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sections', nargs='*', metavar='SECTION',
                        help=f"some of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument('--profile', action='store_true',
                        help='per-layer times (forward; forward and backward for train)')
    parser.add_argument('--repeat', type=int, help=f'timed runs (turns) per median (default '
                        f'{FORWARD_REPEAT} at 500x375, {LARGE_REPEAT} at larger sizes, '
                        f'{TRAIN_REPEAT} training steps)')
    parser.add_argument('--size', type=_size, action='append', metavar='WxH',
                        help='forward sizes, repeatable (default 500x375 and 1000x750)')
    parser.add_argument('--tiles', type=int, default=TILES, metavar='K',
                        help=f'tile: run the K largest windows of the 8000x6000 tiling, '
                        f'extrapolate the time (default {TILES}; 0: every tile)')
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
        ctx = dict(tmp=work, profile=args.profile, repeat=args.repeat, results={},
                   sizes=tuple(args.size or FORWARD_SIZES), tiles=args.tiles,
                   load_start=_loadavg(), start=time.perf_counter())
        print(f"npcaffe {npcaffe.__version__}, NumPy {np.__version__}, Python "
              f"{sys.version.split()[0]}; {parallel.num_threads()} worker threads; "
              f"{_winograd_path()}; load average {ctx['load_start']}")
        for name in SECTIONS:
            if name in sections:
                globals()[f'section_{name}'](ctx)
        summary(ctx)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
