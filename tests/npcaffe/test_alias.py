"""npcaffe.install_as_caffe(): ``import caffe`` and pycaffe's submodules give npcaffe's modules
(one object under both names), ``caffe.layers``/``caffe.params`` are NetSpec's objects, and a
different caffe already imported is refused. Each case runs in a fresh interpreter, since the
alias is for the whole process."""
import subprocess
import sys
import textwrap



def run_python(code, cwd=None):
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pycaffe_import_forms_resolve_to_npcaffe():
    out = run_python("""
        import sys
        import npcaffe
        assert 'caffe' not in sys.modules
        assert npcaffe.install_as_caffe() is npcaffe
        import caffe
        import caffe.io
        import caffe.proto.caffe_pb2
        import caffe.draw, caffe.coord_map, caffe.net_spec, caffe.classifier, caffe.detector
        from caffe.proto import caffe_pb2
        from caffe.coord_map import coord_map_from_to, crop
        from caffe import layers as L, params as P, to_proto
        import npcaffe.io, npcaffe.draw, npcaffe.net_spec
        assert caffe is npcaffe and caffe.io is npcaffe.io and caffe.draw is npcaffe.draw
        assert caffe_pb2 is npcaffe.proto.caffe_pb2 is caffe.proto.caffe_pb2
        assert sys.modules['caffe.proto.caffe_pb2'] is caffe_pb2
        assert caffe.coord_map.crop is crop and caffe.net_spec is npcaffe.net_spec
        assert L is npcaffe.net_spec.layers and P is npcaffe.net_spec.params
        assert sys.modules['caffe.layers'] is L and sys.modules['caffe.params'] is P
        import caffe.layers as L2
        assert L2 is L
        assert caffe.Classifier is sys.modules['caffe.classifier'].Classifier
        assert str(to_proto(L.ReLU(L.Input(), name='r'))).count('layer {') == 2
        assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
        assert npcaffe.install_as_caffe() is npcaffe          # again: nothing changes
        print('ok')
    """)
    assert out.strip() == 'ok'


def test_other_submodules_alias_without_loading_twice():
    out = run_python("""
        import sys
        import npcaffe
        npcaffe.install_as_caffe()
        import caffe.solver
        import npcaffe.solver
        assert caffe.solver is npcaffe.solver
        assert sys.modules['caffe.solver'] is npcaffe.solver
        assert not any(name.startswith('caffe.layers.') for name in sys.modules)
        for name in ('caffe.pycaffe', 'caffe.layers.conv'):
            try:
                __import__(name)
            except ModuleNotFoundError as exc:
                print(name, exc)
    """)
    assert "caffe.pycaffe No module named 'caffe.pycaffe'" in out
    assert "caffe.layers.conv No module named 'caffe.layers.conv'" in out


def test_a_real_caffe_already_imported_is_refused(tmp_path):
    pkg = tmp_path / 'caffe'
    pkg.mkdir()
    (pkg / '__init__.py').write_text("REAL = True\n")
    out = run_python("""
        import caffe
        import npcaffe
        try:
            npcaffe.install_as_caffe()
        except npcaffe.CaffeError as exc:
            print(exc)
        import caffe
        print(caffe.REAL)
    """, cwd=tmp_path)
    first, second = out.strip().splitlines()
    assert first.startswith('cannot install npcaffe as caffe: a caffe module is already '
                            'imported from') and str(pkg) in first
    assert second == 'True'


def test_npcaffe_itself_provides_no_caffe(tmp_path):
    # no top-level caffe beside npcaffe that would shadow a real pycaffe; nothing on import
    out = run_python("""
        import importlib.util, os, sys
        import npcaffe, npcaffe.alias
        print('caffe' in sys.modules)
        spec = importlib.util.find_spec('caffe')
        home = os.path.dirname(os.path.dirname(npcaffe.__file__))
        print(spec is None or not (spec.origin or '').startswith(home + os.sep))
    """, cwd=tmp_path)
    assert out.split() == ['False', 'True']
