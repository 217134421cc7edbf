#!/bin/sh
# The image's entry point: `docker run IMAGE VERB [ARGS...]` runs one of the toolkit's tools
# through the `fcn` command that pip installed. FCN_HOME is where the source is (/opt/fcn in the
# image; the `test` verb runs its suite there); PYTHON the interpreter; FCN the fcn command.
set -eu
APP="${FCN_HOME:-/opt/fcn}"
PY="${PYTHON:-python}"
FCN="${FCN:-fcn}"

usage() {
    cat <<USAGE
usage: docker run [-v DATA:/data] [-v OUT:/out] IMAGE VERB [ARGS...]

verbs:
  solve ARGS       train an FCN               (fcn solve ARGS)
  infer ARGS       segment images             (fcn infer ARGS)
  nets ARGS        generate FCN prototxts     (fcn nets ARGS)
  demo ARGS        train on a generated toy set, no download (fcn demo ARGS)
  surgery ARGS     classifier -> FCN weights  (fcn surgery ARGS)
  score ARGS       score label PNGs           (fcn score ARGS)
  labels ARGS      convert / check labels     (fcn labels ARGS)
  get-data ARGS    download VOC, SBD, VGG16   (fcn get-data ARGS)
  models ARGS      published models: list, fetch (fcn models ARGS)
  test ARGS        run the test suite         (python -m pytest -q ARGS; mount the shared
                   test data: -v SHARED:/shared:ro -e FCN_SHARED=/shared)
  help             this text
Anything else is run as a command (e.g. bash). Each tool takes --help.
Volumes: /data for datasets and weights, /out for results (the working directory).
USAGE
}

verb="${1:-help}"
[ "$#" -gt 0 ] && shift
case "$verb" in
    solve|infer|nets|demo|surgery|score|labels|get-data|models)
                exec "$FCN" "$verb" "$@" ;;
    labeltools) exec "$FCN" labels "$@" ;;
    test)       cd "$APP" && exec "$PY" -m pytest -q -p no:cacheprovider "$@" ;;
    help|-h|--help) usage ;;
    *)          exec "$verb" "$@" ;;
esac
