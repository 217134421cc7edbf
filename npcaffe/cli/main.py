"""The ``npcaffe`` command (also ``python -m npcaffe``): Caffe's ``caffe`` brew verbs and its
tools as sub-commands, so that a shell script written for Caffe runs with the program's name
changed (``caffe train ...`` -> ``npcaffe train ...``, ``convert_imageset ...`` ->
``npcaffe convert_imageset ...``).

``npcaffe`` alone or ``npcaffe help`` lists the verbs; ``npcaffe help VERB`` and
``npcaffe VERB --help`` show a verb's flags; an unknown verb is a usage error (exit 2) naming
close ones.

To add a verb, add one entry to :data:`VERBS`: the verb, the module holding its entry point,
the entry point's name (a ``main(argv=None)`` that takes the arguments after the verb and
returns the exit status) and a one-line summary. Modules are imported only when their verb runs.
"""
import difflib
import importlib
import sys

#: verb -> (module, entry point, summary).
VERBS = {
    'train': ('npcaffe.cli.caffe', 'main_train', 'train or finetune a model'),
    'test': ('npcaffe.cli.caffe', 'main_test', 'score a model'),
    'time': ('npcaffe.cli.caffe', 'main_time', 'benchmark model execution time'),
    'device_query': ('npcaffe.cli.caffe', 'main_device_query',
                     'show diagnostic information for the device'),
    'convert_imageset': ('npcaffe.tools.convert_imageset', 'main',
                         'convert a list of images to an LMDB/LevelDB of Datums'),
    'compute_image_mean': ('npcaffe.tools.compute_image_mean', 'main',
                           'compute the mean image of a database (binaryproto)'),
    'extract_features': ('npcaffe.tools.extract_features', 'main',
                         "write a net's blobs over N batches into databases of Datums"),
    'upgrade_net_proto_text': ('npcaffe.tools.upgrade_proto', 'main_net_text',
                               'upgrade a net prototxt to the current format'),
    'upgrade_net_proto_binary': ('npcaffe.tools.upgrade_proto', 'main_net_binary',
                                 'upgrade a binary net (caffemodel) to the current format'),
    'upgrade_solver_proto_text': ('npcaffe.tools.upgrade_proto', 'main_solver_text',
                                  'upgrade a solver prototxt to the current format'),
    'run': ('npcaffe.cli.run_script', 'main',
            'run an unmodified pycaffe script, `import caffe` giving npcaffe'),
    'export-onnx': ('npcaffe.onnx.cli', 'main',
                    'export a TEST net and its weights to ONNX (Caffe\'s exact semantics)'),
}


def entry_point(verb):
    """The ``main(argv=None)`` of ``verb`` (imports its module)."""
    module, name, _ = VERBS[verb]
    return getattr(importlib.import_module(module), name)


def usage():
    width = max(map(len, VERBS))
    lines = ['npcaffe: Caffe\'s command line on the npcaffe engine',
             'usage: npcaffe <command> <args>', '', 'commands:']
    lines += [f"  {verb:<{width}}  {summary}" for verb, (_, _, summary) in VERBS.items()]
    lines += ['', "npcaffe <command> --help shows a command's flags."]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to its verb; the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('help', '-h', '-help', '--help'):
        if len(argv) > 1 and argv[1] in VERBS:
            return entry_point(argv[1])(['--help'])
        sys.stdout.write(usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, VERBS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ''
        sys.stderr.write(f"usage: npcaffe <command> <args>\nerror: unknown command "
                         f"{verb!r}.{hint} Commands: {', '.join(VERBS)}\n")
        return 2
    return entry_point(verb)(rest)


if __name__ == '__main__':
    sys.exit(main())
