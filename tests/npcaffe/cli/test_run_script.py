"""npcaffe.cli.run_script: an unmodified pycaffe script runs with import caffe giving npcaffe,
as ``python SCRIPT ARGS`` would run it (argv, __main__, its folder on sys.path, exit status,
its own traceback), in-process through main() and as ``python -m npcaffe.cli.run_script``."""
import json
import subprocess
import sys
import textwrap

import pytest

from npcaffe.cli import run_script


@pytest.fixture
def clean_alias():
    """Undo install_as_caffe after an in-process run (the alias is for the whole process)."""
    meta_path = list(sys.meta_path)
    before = {name for name in sys.modules if name == 'caffe' or name.startswith('caffe.')}
    yield
    sys.meta_path[:] = meta_path
    for name in [n for n in sys.modules if n == 'caffe' or n.startswith('caffe.')]:
        if name not in before:
            del sys.modules[name]


def write(folder, name, code):
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return path


REPORTER = """
    import json, os, sys
    import caffe
    import caffe.proto.caffe_pb2
    from caffe import layers as L, params as P
    import beside_the_script                       # in the script's folder
    caffe.set_mode_gpu()
    caffe.set_device(0)
    out = dict(name=__name__, argv=sys.argv, path0=sys.path[0], file=__file__,
               netspec=type(L).__name__, helper=beside_the_script.VALUE,
               pool_max=P.Pooling.MAX, proto=caffe.proto.caffe_pb2.__name__)
    with open(os.environ['REPORT'], 'w') as f:
        json.dump(out, f)
    if __name__ == '__main__':
        sys.exit(int(sys.argv[1]))
"""


def test_the_script_runs_as_python_would_run_it(tmp_path, monkeypatch, clean_alias):
    folder = tmp_path / 'scripts'
    folder.mkdir()
    script = write(folder, 'report.py', REPORTER)
    write(folder, 'beside_the_script.py', "VALUE = 42\n")
    monkeypatch.setenv('REPORT', str(tmp_path / 'report.json'))
    monkeypatch.chdir(tmp_path)
    argv, path = list(sys.argv), list(sys.path)
    args = ['scripts/report.py', '3', '--gpu', '-h', '--debug']      # options after SCRIPT
    assert run_script.main(args) == 3
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report == dict(name='__main__', argv=args,
                          path0=str(folder), file=str(script), netspec='Layers', helper=42,
                          pool_max=0, proto='npcaffe.proto.caffe_pb2')
    assert sys.argv == argv and sys.path == path          # restored for the caller
    assert run_script.main(['--', 'scripts/report.py', '0']) == 0


def test_an_exception_shows_the_scripts_own_traceback(tmp_path, capsys, clean_alias):
    script = write(tmp_path, 'fails.py', """
        import caffe

        def load(name):
            raise ValueError(f'no model {name}')

        load('deploy.prototxt')
    """)
    assert run_script.main([str(script)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('Traceback (most recent call last):\n')
    assert f'File "{script}", line 7, in <module>' in err
    assert f'File "{script}", line 5, in load' in err
    assert err.rstrip().endswith("ValueError: no model deploy.prototxt")
    assert 'run_script.py' not in err


def test_exit_codes_follow_sys_exit(tmp_path, capsys, clean_alias):
    assert run_script.main([str(write(tmp_path, 'a.py', "print('done')\n"))]) == 0
    assert run_script.main([str(write(tmp_path, 'b.py', "import sys; sys.exit()\n"))]) == 0
    assert run_script.main([str(write(tmp_path, 'c.py', "import sys; sys.exit('bye')\n"))]) == 1
    captured = capsys.readouterr()
    assert captured.out == 'done\n' and captured.err == 'bye\n'
    assert run_script.main([str(write(tmp_path, 'd.py', "x = (\n"))]) == 1
    assert 'SyntaxError' in capsys.readouterr().err


def test_usage_errors(tmp_path, capsys):
    assert run_script.main([]) == 2
    assert 'error: the following arguments are required: SCRIPT' in capsys.readouterr().err
    missing = tmp_path / 'missing.py'
    assert run_script.main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('usage:') and f"error: script {str(missing)!r} is not a file" in err
    assert run_script.main(['--bogus', str(missing)]) == 2
    assert 'unrecognized arguments: --bogus' in capsys.readouterr().err


PYLOSS_SCRIPT = """
    import sys
    import numpy as np
    import caffe

    caffe.set_mode_gpu()
    net = caffe.Net(sys.argv[1], caffe.TRAIN)
    loss = net.forward()['loss']
    net.backward()
    delta = net.blobs['ipx'].data - net.blobs['ipy'].data
    expected = (delta ** 2).sum() / net.blobs['ipx'].num / 2
    print(f"{float(loss[0]):.6g} {float(expected):.6g} {net.blobs['ipx'].num}")
"""

PYLOSS_MODULE = """
    import numpy as np
    import caffe


    class HalfSquaredLoss(caffe.Layer):
        def reshape(self, bottom, top):
            top[0].reshape(1)

        def forward(self, bottom, top):
            self.delta = bottom[0].data - bottom[1].data
            top[0].data[...] = np.sum(self.delta ** 2) / bottom[0].num / 2.0

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = self.delta / bottom[0].num
            bottom[1].diff[...] = -self.delta / bottom[0].num
"""

LINREG = """
    layer { type: 'DummyData' name: 'x' top: 'x'
      dummy_data_param { shape { dim: 10 dim: 3 dim: 2 } data_filler { type: 'gaussian' } } }
    layer { type: 'DummyData' name: 'y' top: 'y'
      dummy_data_param { shape { dim: 10 dim: 3 dim: 2 } data_filler { type: 'gaussian' } } }
    layer { type: 'InnerProduct' name: 'ipx' bottom: 'x' top: 'ipx'
      inner_product_param { num_output: 10 weight_filler { type: 'xavier' } } }
    layer { type: 'InnerProduct' name: 'ipy' bottom: 'y' top: 'ipy'
      inner_product_param { num_output: 10 weight_filler { type: 'xavier' } } }
    layer { type: 'Python' name: 'loss' bottom: 'ipx' bottom: 'ipy' top: 'loss'
      python_param { module: 'pyloss_like' layer: 'HalfSquaredLoss' } loss_weight: 1 }
"""


def test_as_a_module_a_pycaffe_python_layer_script_runs(tmp_path):
    # BVLC's pyloss.py pattern: the layer's module beside the script, `import caffe` in both
    folder = tmp_path / 'example'
    folder.mkdir()
    script = write(folder, 'linreg.py', PYLOSS_SCRIPT)
    write(folder, 'pyloss_like.py', PYLOSS_MODULE)
    net = write(folder, 'linreg.prototxt', LINREG)
    proc = subprocess.run([sys.executable, '-m', 'npcaffe.cli.run_script', str(script), str(net)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    loss, expected, num = proc.stdout.split()
    assert loss == expected and float(loss) > 0 and num == '10'
    warnings = [line for line in proc.stderr.splitlines() if line.startswith('WARNING')]
    assert len(warnings) == 1 and 'set_mode_gpu' in warnings[0] and 'CPU' in warnings[0]


def test_as_a_module_status_traceback_and_the_scripts_logging(tmp_path):
    script = write(tmp_path, 'logs.py', """
        import logging, sys
        import caffe
        logging.basicConfig(level=logging.INFO, format='SCRIPT %(message)s')
        logging.getLogger('mine').info('hello %s', sys.argv[1])
        if sys.argv[1] == 'fail':
            raise KeyError('k')
        sys.exit(5)
    """)
    run = [sys.executable, '-m', 'npcaffe.cli.run_script', str(script)]
    proc = subprocess.run(run + ['ok'], capture_output=True, text=True)
    assert proc.returncode == 5 and proc.stderr == 'SCRIPT hello ok\n'
    proc = subprocess.run(run + ['fail'], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith('SCRIPT hello fail\nTraceback (most recent call last):\n')
    assert f'File "{script}", line 7, in <module>' in proc.stderr
    assert proc.stderr.endswith("KeyError: 'k'\n") and 'run_script.py' not in proc.stderr
