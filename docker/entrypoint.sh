#!/bin/sh
# The image's entry point: `docker run IMAGE VERB [ARGS...]` runs one of the toolkit's tools.
# FCN_HOME is where the toolkit is installed (/opt/fcn in the image); PYTHON the interpreter.
set -eu
APP="${FCN_HOME:-/opt/fcn}"
PY="${PYTHON:-python}"
# the toolkit's modules (and the prototxts' Python data layers) import from any working folder
export PYTHONPATH="$APP${PYTHONPATH:+:$PYTHONPATH}"

usage() {
    cat <<USAGE
usage: docker run [-v DATA:/data] [-v OUT:/out] IMAGE VERB [ARGS...]

verbs:
  solve ARGS       train an FCN               (python solve.py ARGS)
  infer ARGS       segment images             (python infer.py ARGS)
  nets ARGS        generate FCN prototxts     (python -m nets ARGS)
  demo ARGS        train on a generated toy set, no download (python solve.py --demo ARGS)
  surgery ARGS     classifier -> FCN weights  (python surgery.py ARGS)
  score ARGS       score label PNGs           (python score.py ARGS)
  labeltools ARGS  convert / check labels     (python labeltools.py ARGS)
  get-data ARGS    download VOC, SBD, VGG16   (python scripts/get_data.py ARGS)
  test ARGS        run the test suite         (python -m pytest -q ARGS)
  help             this text
Anything else is run as a command (e.g. bash). Each tool takes --help.
Volumes: /data for datasets and weights, /out for results (the working directory).
USAGE
}

verb="${1:-help}"
[ "$#" -gt 0 ] && shift
case "$verb" in
    solve)      exec "$PY" "$APP/solve.py" "$@" ;;
    infer)      exec "$PY" "$APP/infer.py" "$@" ;;
    nets)       exec "$PY" -m nets "$@" ;;
    demo)       exec "$PY" "$APP/solve.py" --demo "$@" ;;
    surgery)    exec "$PY" "$APP/surgery.py" "$@" ;;
    score)      exec "$PY" "$APP/score.py" "$@" ;;
    labeltools) exec "$PY" "$APP/labeltools.py" "$@" ;;
    get-data)   exec "$PY" "$APP/scripts/get_data.py" "$@" ;;
    test)       cd "$APP" && exec "$PY" -m pytest -q "$@" ;;
    help|-h|--help) usage ;;
    *)          exec "$verb" "$@" ;;
esac
